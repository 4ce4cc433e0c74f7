package http

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"
	"github.com/valyala/fasthttp"

	"limen/libs/web"
)

// Uploads are forwarded on a connection of their own rather than through the pooled client: the
// fasthttp client writes a whole request before it reads any of the answer, so a service that
// answers before reading the body (a refused name, a full disk, a 413) and closes the connection
// would reach the client as a broken pipe, a 502, instead of its answer. Here the answer is read
// while the body is still being sent, as net/http's transport does, and wins.

const (
	// uploadAnswerLimit caps the service's answer to an upload (a small JSON document).
	uploadAnswerLimit = 4 << 20
	// uploadDialTimeout bounds connecting to the service.
	uploadDialTimeout = 10 * time.Second
	// answerGrace is how long the answer may still take once sending the body has failed on the
	// service's side (it may have answered and closed just before).
	answerGrace = 5 * time.Second
	// uploadWriteBuffer is the size of the writes to the service.
	uploadWriteBuffer = 64 << 10
)

var errAnswered = errors.New("service answered before the body was sent")

// upload forwards an upload to target. The body is still on the client's connection (the app
// streams uploads, see IsUpload): its length is checked before anything is read (413 over
// UploadLimit, without contacting the service), then it is sent on as it arrives.
func (p *Proxy) upload(c *fiber.Ctx, target string) error {
	body, size, err := web.UploadBody(c, p.UploadLimit)
	if err != nil {
		return err
	}
	return forwardUpload(c, target, body, size, p.UploadTimeout)
}

// forwardUpload sends c's request to target with body (size bytes) as its body and puts the
// service's answer in c's response. Without an answer it fails as the pooled client does:
// fasthttp.ErrTimeout past the timeout, another error when the service could not be reached or
// broke off, or a *web.Error when the client's body broke off.
func forwardUpload(c *fiber.Ctx, target string, body io.Reader, size int64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	conn, err := dialService(target, deadline)
	if err != nil {
		return timedOut(err, deadline)
	}
	defer conn.Close()
	_ = conn.SetDeadline(deadline)

	req := c.Request()
	original := utils.CopyString(c.OriginalURL())
	defer req.SetRequestURI(original)
	req.SetRequestURI(target)
	req.URI().DisablePathNormalizing = true // as the pooled client: the path goes on as it came
	req.Header.Del(fiber.HeaderConnection)
	req.SetConnectionClose()
	answered := make(chan struct{})
	src := &uploadSource{r: body, answered: answered}
	req.SetBodyStream(src, int(size))

	answer := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(answer)
	answer.Header.DisableNormalizing()
	readErr := make(chan error, 1)
	go func() {
		err := answer.ReadLimitBody(bufio.NewReader(conn), uploadAnswerLimit)
		if err == nil {
			close(answered)
		}
		readErr <- err
	}()

	bw := bufio.NewWriterSize(conn, uploadWriteBuffer)
	writeErr := req.Write(bw)
	if writeErr == nil {
		writeErr = bw.Flush()
	}
	switch {
	case src.err != nil && !errors.Is(src.err, errAnswered):
		// The client's body broke off (it went away, or sent less than it announced): nothing to
		// complete; the service sees the connection close mid-body.
		_ = conn.Close()
		<-readErr
		return &web.Error{Code: http.StatusBadRequest, Message: "Upload interrupted", Detail: src.err.Error()}
	case writeErr != nil && !errors.Is(writeErr, errAnswered):
		// The service stopped reading: it may have answered just before; give the answer a moment.
		_ = conn.SetReadDeadline(earliest(deadline, time.Now().Add(answerGrace)))
	}
	if err := <-readErr; err != nil {
		return timedOut(err, deadline)
	}
	answer.CopyTo(c.Response())
	return nil
}

// timedOut is err, as fasthttp.ErrTimeout when it is the deadline that ended the upload.
func timedOut(err error, deadline time.Time) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() && !time.Now().Before(deadline) {
		return fasthttp.ErrTimeout
	}
	return err
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// dialService connects to target's host, over TLS for https.
func dialService(target string, deadline time.Time) (net.Conn, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	isTLS := u.Scheme == "https"
	addr := fasthttp.AddMissingPort(u.Host, isTLS)
	dialer := net.Dialer{Deadline: earliest(deadline, time.Now().Add(uploadDialTimeout))}
	if !isTLS {
		return dialer.Dial("tcp", addr)
	}
	return tls.DialWithDialer(&dialer, "tcp", addr, &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12})
}

// uploadSource is the client's body on its way to the service: it stops once the service has
// answered, and remembers why it stopped.
type uploadSource struct {
	r        io.Reader
	answered <-chan struct{}
	err      error
}

func (s *uploadSource) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	select {
	case <-s.answered:
		s.err = errAnswered
		return 0, s.err
	default:
	}
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}
