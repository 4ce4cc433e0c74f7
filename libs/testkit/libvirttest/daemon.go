// Package libvirttest runs a private libvirtd for tests: each test package gets its own daemon in
// session mode (qemu:///session) under an unprivileged user, with all state in a temporary directory,
// so tests never touch the host's libvirtd and never collide with each other.
//
// The daemon dies with the test process (Pdeathsig), and Stop kills every process that belongs to
// its directory (the daemon, virtlogd and QEMU guests), so a failed test leaves no guest running.
package libvirttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// User is the unprivileged account the daemons and their guests run as.
const User = "limen-test"

// Daemon is one private libvirtd.
type Daemon struct {
	dir      string
	uid, gid int
	cmd      *exec.Cmd
	done     chan struct{}
}

// Start makes a fresh state directory and starts a daemon in it.
func Start(ctx context.Context) (*Daemon, error) {
	bin, err := exec.LookPath("libvirtd")
	if err != nil {
		return nil, errors.New("libvirtd not found (make test installs it: apt-get install libvirt-daemon-driver-qemu qemu-system-x86)")
	}
	uid, gid, err := ensureUser()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "limen-libvirt-")
	if err != nil {
		return nil, err
	}
	d := &Daemon{dir: dir, uid: uid, gid: gid}
	for _, sub := range []string{"home", "run", "images"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, err
		}
	}
	if err := filepath.WalkDir(dir, func(path string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Chmod(path, 0o755); err != nil {
			return err
		}
		return os.Chown(path, uid, gid)
	}); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := d.start(ctx, bin); err != nil {
		_ = d.Stop()
		return nil, err
	}
	return d, nil
}

// SocketPath is the daemon's unix socket.
func (d *Daemon) SocketPath() string { return filepath.Join(d.dir, "run", "libvirt", "libvirt-sock") }

// URI is what to open on the socket.
func (d *Daemon) URI() string { return "qemu:///session" }

// ImageDir is a directory the daemon's user can write, for storage pools.
func (d *Daemon) ImageDir() string { return filepath.Join(d.dir, "images") }

func (d *Daemon) env() []string {
	home := filepath.Join(d.dir, "home")
	return []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + home,
		"XDG_RUNTIME_DIR=" + filepath.Join(d.dir, "run"),
		"XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"XDG_CACHE_HOME=" + filepath.Join(home, ".cache"),
		"XDG_DATA_HOME=" + filepath.Join(home, ".local", "share"),
	}
}

func (d *Daemon) start(ctx context.Context, bin string) error {
	logFile, err := os.OpenFile(filepath.Join(d.dir, "libvirtd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(bin)
	cmd.Env = d.env()
	cmd.Dir = d.dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: uint32(d.uid), Gid: uint32(d.gid)},
		Pdeathsig:  syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start libvirtd: %w", err)
	}
	d.cmd, d.done = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(d.done) }()

	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-d.done:
			log, _ := os.ReadFile(logFile.Name())
			return fmt.Errorf("libvirtd exited during start-up: %s", log)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if conn, err := net.Dial("unix", d.SocketPath()); err == nil {
			return conn.Close()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("libvirtd did not open its socket within 20s")
}

// Kill ends the daemon at once, as a crash would; guests keep running.
func (d *Daemon) Kill() error {
	if d.cmd == nil || d.cmd.Process == nil {
		return nil
	}
	_ = d.cmd.Process.Kill()
	<-d.done
	_ = os.Remove(d.SocketPath())
	return nil
}

// Restart starts the daemon again on the same state, after Kill.
func (d *Daemon) Restart(ctx context.Context) error {
	bin, err := exec.LookPath("libvirtd")
	if err != nil {
		return err
	}
	return d.start(ctx, bin)
}

// Stop kills the daemon and everything that belongs to its directory, then removes the directory.
func (d *Daemon) Stop() error {
	_ = d.Kill()
	for attempt := 0; attempt < 50; attempt++ {
		pids := d.ownProcesses()
		if len(pids) == 0 {
			return os.RemoveAll(d.dir)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("processes of %s survive SIGKILL: %v", d.dir, d.ownProcesses())
}

// ownProcesses are the live processes of the test user whose command line or environment names
// this daemon's directory: virtlogd and QEMU guests included, other packages' daemons excluded.
func (d *Daemon) ownProcesses() []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	marker := []byte(d.dir)
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		var st syscall.Stat_t
		if syscall.Stat(filepath.Join("/proc", e.Name()), &st) != nil || int(st.Uid) != d.uid {
			continue
		}
		if status, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); bytes.Contains(status, []byte(") Z ")) {
			continue // a zombie is already dead
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		environ, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if bytes.Contains(cmdline, marker) || bytes.Contains(environ, marker) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// ensureUser returns the test user's ids, creating the account when it is missing.
func ensureUser() (int, int, error) {
	u, err := user.Lookup(User)
	if err != nil {
		out, cerr := exec.Command("useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
			"--shell", "/usr/sbin/nologin", User).CombinedOutput()
		if cerr != nil && !strings.Contains(string(out), "already exists") {
			return 0, 0, fmt.Errorf("create user %s: %v: %s", User, cerr, out)
		}
		if u, err = user.Lookup(User); err != nil {
			return 0, 0, err
		}
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return uid, gid, nil
}
