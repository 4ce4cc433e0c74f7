// Command limen-broker is a single-process, Kafka-protocol broker for the local stack and for tests.
//
// It wraps github.com/twmb/franz-go/pkg/kfake: no JVM, starts in milliseconds, keeps its data in
// memory unless -data-dir is given. It is not a production broker; docker-compose.yml runs Apache
// Kafka instead.
//
// Every flag has an environment fallback (flag wins):
//
//	-addr        LIMEN_KAFKA_ADDR        listen address(es), comma separated; one broker per address
//	                                     (default 127.0.0.1:19092). The host is also the advertised
//	                                     host, so use an address clients can reach (not 0.0.0.0).
//	-topics      LIMEN_KAFKA_TOPICS      topics created at start (default: every topic the services use,
//	                                     contract.Topics: limen.vm.events,limen.media.events,limen.user.events)
//	-partitions  LIMEN_KAFKA_PARTITIONS  partitions of pre-created and auto-created topics (default 3)
//	-auto-create LIMEN_KAFKA_AUTO_CREATE create unknown topics on first use (default true)
//	-data-dir    LIMEN_KAFKA_DATA_DIR    persist state in this directory (default: memory only)
//	-log-level   LIMEN_KAFKA_LOG_LEVEL   kfake's own log level: none, error, warn, info, debug (default warn)
//
// It logs one JSON line when it is listening and one when it stops; SIGINT or SIGTERM stop it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"

	"limen/libs/contract"
)

type options struct {
	addrs      []string
	topics     []string
	partitions int
	autoCreate bool
	dataDir    string
	logLevel   kfake.LogLevel
}

func main() {
	opts, err := parseOptions(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "limen-broker: %v\n", err)
		os.Exit(2)
	}

	// Debug so that -log-level debug reaches the output; kfake's lines are filtered in slogLogger.
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("service", "limen-broker")

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)

	cluster, err := kfake.NewCluster(clusterOptions(opts, log)...)
	if err != nil {
		log.Error("cannot start broker", "err", err.Error())
		os.Exit(1)
	}
	log.Info("limen-broker listening",
		"addrs", cluster.ListenAddrs(),
		"topics", opts.topics,
		"partitions", opts.partitions,
		"auto_create_topics", opts.autoCreate,
		"data_dir", opts.dataDir,
	)

	sig := <-sigs
	done := make(chan struct{})
	go func() {
		cluster.Close()
		close(done)
	}()
	select {
	case <-done:
		log.Info("limen-broker stopped", "signal", sig.String())
	case <-sigs:
		log.Warn("limen-broker forced to stop", "signal", sig.String())
		os.Exit(1)
	}
}

func parseOptions(args []string) (options, error) {
	fs := flag.NewFlagSet("limen-broker", flag.ContinueOnError)
	addr := fs.String("addr", envOr("LIMEN_KAFKA_ADDR", "127.0.0.1:19092"), "listen address(es), comma separated; one broker per address")
	topics := fs.String("topics", envOr("LIMEN_KAFKA_TOPICS", strings.Join(contract.Topics, ",")), "topics to create at start, comma separated")
	partitions := fs.Int("partitions", envInt("LIMEN_KAFKA_PARTITIONS", 3), "partitions per topic (pre-created and auto-created)")
	autoCreate := fs.Bool("auto-create", envBool("LIMEN_KAFKA_AUTO_CREATE", true), "create unknown topics on first use")
	dataDir := fs.String("data-dir", os.Getenv("LIMEN_KAFKA_DATA_DIR"), "persist broker state in this directory (empty: memory only)")
	level := fs.String("log-level", envOr("LIMEN_KAFKA_LOG_LEVEL", "warn"), "kfake log level: none, error, warn, info, debug")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}

	o := options{
		addrs:      splitList(*addr),
		topics:     splitList(*topics),
		partitions: *partitions,
		autoCreate: *autoCreate,
		dataDir:    *dataDir,
	}
	if len(o.addrs) == 0 {
		return o, errors.New("-addr: at least one address is required")
	}
	for _, a := range o.addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return o, fmt.Errorf("-addr %q: %v", a, err)
		}
	}
	if o.partitions < 1 {
		return o, fmt.Errorf("-partitions must be at least 1, got %d", o.partitions)
	}
	switch strings.ToLower(*level) {
	case "none":
		o.logLevel = kfake.LogLevelNone
	case "error":
		o.logLevel = kfake.LogLevelError
	case "warn":
		o.logLevel = kfake.LogLevelWarn
	case "info":
		o.logLevel = kfake.LogLevelInfo
	case "debug":
		o.logLevel = kfake.LogLevelDebug
	default:
		return o, fmt.Errorf("-log-level %q: want none, error, warn, info or debug", *level)
	}
	return o, nil
}

func clusterOptions(o options, log *slog.Logger) []kfake.Opt {
	// kfake listens on 127.0.0.1:<port> for each broker. ListenFn substitutes the host and port we
	// were asked for, in order (kfake creates its brokers one after the other, in order).
	var mu sync.Mutex
	next := 0
	listen := func(network, _ string) (net.Listener, error) {
		mu.Lock()
		defer mu.Unlock()
		if next >= len(o.addrs) {
			return nil, fmt.Errorf("no listen address configured for broker %d", next)
		}
		a := o.addrs[next]
		next++
		return net.Listen(network, a)
	}
	ports := make([]int, len(o.addrs)) // only the count matters: ListenFn picks the address
	opts := []kfake.Opt{
		kfake.Ports(ports...),
		kfake.ListenFn(listen),
		kfake.ClusterID("limen-local"),
		kfake.DefaultNumPartitions(o.partitions),
		kfake.WithLogger(slogLogger{log: log, level: o.logLevel}),
	}
	if o.autoCreate {
		opts = append(opts, kfake.AllowAutoTopicCreation())
	}
	if len(o.topics) > 0 {
		opts = append(opts, kfake.SeedTopics(int32(o.partitions), o.topics...))
	}
	if o.dataDir != "" {
		opts = append(opts, kfake.DataDir(o.dataDir))
	}
	return opts
}

// slogLogger forwards kfake's log lines to slog, so every line the broker writes is JSON.
type slogLogger struct {
	log   *slog.Logger
	level kfake.LogLevel
}

func (l slogLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	if level > l.level || level == kfake.LogLevelNone {
		return
	}
	var sl slog.Level
	switch level {
	case kfake.LogLevelError:
		sl = slog.LevelError
	case kfake.LogLevelWarn:
		sl = slog.LevelWarn
	case kfake.LogLevelInfo:
		sl = slog.LevelInfo
	default:
		sl = slog.LevelDebug
	}
	l.log.Log(context.Background(), sl, fmt.Sprintf(format, args...), "component", "kfake")
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return def
}

func envInt(key string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(key)); err == nil {
		return v
	}
	return def
}

func envBool(key string, def bool) bool {
	if v, err := strconv.ParseBool(os.Getenv(key)); err == nil {
		return v
	}
	return def
}
