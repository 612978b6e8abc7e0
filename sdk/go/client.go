package clawplane

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/url"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/proto"

	pb "github.com/clawplane/clawplane/sdk/go/gen/clawplane/v1"
)

const (
	// DefaultURL is the gateway URL used when CLAWPLANE_URL is not set.
	DefaultURL = "http://127.0.0.1:18789"
	// maxDecode is the largest message the client accepts (transcripts can be long).
	maxDecode = 64 << 20
	// unaryAttempts is how often idempotent unary calls are tried on UNAVAILABLE (AIP-194).
	unaryAttempts = 3
	// waitChunk is the longest single AgentService/Wait call.
	waitChunk = 30 * time.Second
	// waitMargin is how long before ctx's deadline a bounded Wait call asks the server to
	// answer.
	waitMargin = 100 * time.Millisecond
	// connectTimeout bounds Connect's first dial when ctx has no earlier deadline.
	connectTimeout = 5 * time.Second
)

// DefaultWaitTimeout is how long Run.Wait and WaitRun wait for a run: 30 s, as in every
// clawplane SDK, the CLI's `runs wait` and the gateway's own AgentService/Wait.
const DefaultWaitTimeout = 30 * time.Second

// Client is a connection to one clawplane gateway. It is safe for concurrent use; call
// Close when done.
type Client struct {
	conn *grpc.ClientConn
	url  string

	Chat     pb.ChatServiceClient
	Sessions pb.SessionServiceClient
	Agent    pb.AgentServiceClient
	Events   pb.EventServiceClient
	Gateway  pb.GatewayServiceClient
	Devices  pb.DeviceServiceClient
	Channels pb.ChannelServiceClient
	Webhooks pb.WebhookServiceClient
	Models   pb.ModelServiceClient
}

// bearer adds "authorization: Bearer <token>" to every call.
type bearer struct{ value string }

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": b.value}, nil
}

// RequireTransportSecurity is false: plain http:// gateways (loopback) take tokens too.
func (b bearer) RequireTransportSecurity() bool { return false }

// parseURL returns the dial target and whether TLS is used. A missing scheme means http://.
func parseURL(raw string) (target string, useTLS bool, err error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		s = DefaultURL
	}
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", false, fmt.Errorf("clawplane: invalid gateway URL %q: %w", raw, err)
	}
	switch u.Scheme {
	case "http":
	case "https":
		useTLS = true
	default:
		return "", false, fmt.Errorf("clawplane: invalid gateway URL %q: scheme must be http or https", raw)
	}
	if u.Host == "" || (u.Path != "" && u.Path != "/") {
		return "", false, fmt.Errorf("clawplane: invalid gateway URL %q: want http(s)://HOST:PORT", raw)
	}
	host := u.Host
	if u.Port() == "" {
		if useTLS {
			host += ":443"
		} else {
			host += ":80"
		}
	}
	return host, useTLS, nil
}

// Connect connects to the gateway at rawURL (http://HOST:PORT or https://HOST:PORT; a
// missing scheme means http://) and presents token as "authorization: Bearer <token>" on
// every call (no credential when token is empty). http:// uses a plain-text connection,
// https:// TLS with the system roots (see ConnectWith for a CA file or a pinned
// certificate).
//
// The connection is made now, so an unreachable gateway fails here with an *Error of code
// UNAVAILABLE (with TLS set when the certificate was refused or the port speaks TLS to an
// http:// URL); later drops are re-dialled transparently.
func Connect(ctx context.Context, rawURL, token string) (*Client, error) {
	return ConnectWith(ctx, rawURL, token, TLSOptions{})
}

// ConnectWith is Connect checking an https:// gateway's certificate as tlsOpts says: a CA
// file / PEM, or a pinned SHA-256 fingerprint. TLS options with an http:// URL are an error.
func ConnectWith(ctx context.Context, rawURL, token string, tlsOpts TLSOptions) (*Client, error) {
	target, useTLS, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	if !useTLS && tlsOpts.isSet() {
		return nil, fmt.Errorf("clawplane: CAFile / CAPEM / Fingerprint need an https:// URL, got %q", rawURL)
	}
	for _, r := range token {
		if r < 0x20 || r > 0x7e {
			return nil, fmt.Errorf("clawplane: the token contains characters that cannot be sent in an HTTP header")
		}
	}
	opts := []grpc.DialOption{
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxDecode)),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:                20 * time.Second,
			Timeout:             20 * time.Second,
			PermitWithoutStream: true,
		}),
		// Reconnect quickly after a gateway restart (the default backoff grows to 2 min).
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{
				BaseDelay:  100 * time.Millisecond,
				Multiplier: 1.6,
				Jitter:     0.2,
				MaxDelay:   2 * time.Second,
			},
			MinConnectTimeout: 5 * time.Second,
		}),
	}
	scheme := "http"
	failure := &tlsFailure{}
	if useTLS {
		scheme = "https"
		cfg, err := tlsConfig(tlsOpts)
		if err != nil {
			return nil, err
		}
		opts = append(opts, grpc.WithTransportCredentials(recordingCreds{credentials.NewTLS(cfg), failure}))
	} else {
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer{value: "Bearer " + token}))
	}
	conn, err := grpc.NewClient("passthrough:///"+target, opts...)
	if err != nil {
		return nil, fmt.Errorf("clawplane: invalid gateway URL %q: %w", rawURL, err)
	}
	c := newClient(conn, scheme+"://"+target)
	if err := c.waitReady(ctx, target, useTLS, failure); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return c, nil
}

// ConnectEnv connects like ConnectWith to what Discover("", "", TLSOptions{}) finds: the
// URL from CLAWPLANE_URL (default http://127.0.0.1:18789); the token from CLAWPLANE_TOKEN,
// CLAWPLANE_GATEWAY_TOKEN or, for a loopback URL, the local gateway's token file; and for
// an https:// URL the TLS options from CLAWPLANE_TLS_FINGERPRINT / CLAWPLANE_TLS_CA or, for
// a loopback URL, the local gateway's generated certificate.
func ConnectEnv(ctx context.Context) (*Client, error) {
	d := Discover("", "", TLSOptions{})
	return ConnectWith(ctx, d.URL, d.Token, d.TLS)
}

// NewFromConn wraps an existing connection (which must carry its own credentials).
func NewFromConn(conn *grpc.ClientConn) *Client {
	return newClient(conn, conn.Target())
}

func newClient(conn *grpc.ClientConn, u string) *Client {
	return &Client{
		conn:     conn,
		url:      u,
		Chat:     pb.NewChatServiceClient(conn),
		Sessions: pb.NewSessionServiceClient(conn),
		Agent:    pb.NewAgentServiceClient(conn),
		Events:   pb.NewEventServiceClient(conn),
		Gateway:  pb.NewGatewayServiceClient(conn),
		Devices:  pb.NewDeviceServiceClient(conn),
		Channels: pb.NewChannelServiceClient(conn),
		Webhooks: pb.NewWebhookServiceClient(conn),
		Models:   pb.NewModelServiceClient(conn),
	}
}

// waitReady dials and waits for the connection to become ready. A failure says what was
// wrong with TLS when it can: the refused certificate (from failure), or an http:// URL
// pointing at a port that speaks TLS.
func (c *Client) waitReady(ctx context.Context, target string, useTLS bool, failure *tlsFailure) error {
	err := c.waitReadyState(ctx)
	if err == nil {
		return nil
	}
	if useTLS {
		if ferr := failure.get(); ferr != nil {
			return tlsError(c.url, ferr)
		}
	} else if speaksTLS(target) {
		return &Error{
			Code:     codes.Unavailable,
			Message:  fmt.Sprintf("the gateway at %s serves TLS (https); use https://%s (with CAFile or Fingerprint for a self-signed certificate)", c.url, target),
			Metadata: map[string]string{},
			TLS:      true,
		}
	}
	return err
}

func (c *Client) waitReadyState(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, connectTimeout)
		defer cancel()
	}
	c.conn.Connect()
	for {
		st := c.conn.GetState()
		switch st {
		case connectivity.Ready:
			return nil
		case connectivity.TransientFailure, connectivity.Shutdown:
			return &Error{
				Code:     codes.Unavailable,
				Message:  fmt.Sprintf("the gateway at %s is not reachable", c.url),
				Metadata: map[string]string{},
			}
		}
		if !c.conn.WaitForStateChange(ctx, st) {
			return &Error{
				Code:     codes.Unavailable,
				Message:  fmt.Sprintf("the gateway at %s is not reachable: %v", c.url, ctx.Err()),
				Metadata: map[string]string{},
			}
		}
	}
}

// URL is the gateway URL this client talks to.
func (c *Client) URL() string { return c.url }

// Conn is the underlying gRPC connection.
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// retry runs an idempotent unary call, retrying UNAVAILABLE a few times with backoff
// (AIP-194: nothing else is retried). It returns the number of attempts made.
func retry[T any](ctx context.Context, call func(context.Context) (T, error)) (T, int, error) {
	delay := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		resp, err := call(ctx)
		if err == nil {
			return resp, attempt, nil
		}
		err = wrapErr(err)
		if !retryable(err) || attempt >= unaryAttempts || ctx.Err() != nil {
			var zero T
			return zero, attempt, err
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			var zero T
			return zero, attempt, err
		}
		delay *= 2
	}
}

// NewIdempotencyKey returns a random (version 4) UUID.
func NewIdempotencyKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// Status calls GatewayService/Status: version, defaults, queue depths and the event-log
// head.
func (c *Client) Status(ctx context.Context) (*pb.GatewayServiceStatusResponse, error) {
	resp, _, err := retry(ctx, func(ctx context.Context) (*pb.GatewayServiceStatusResponse, error) {
		return c.Gateway.Status(ctx, &pb.GatewayServiceStatusRequest{})
	})
	return resp, err
}

// headSeq is the event-log head, or nil when the caller may not read status. Used to start
// a run's event stream right before the run's first event.
func (c *Client) headSeq(ctx context.Context) *uint64 {
	s, err := c.Status(ctx)
	if err != nil {
		return nil
	}
	seq := s.GetLastEventSeq()
	return &seq
}

// submit is the shared body of AgentRun, ChatSend and SessionsSend.
func submit[Req proto.Message, Resp interface {
	GetRunId() string
	GetSessionKey() string
	GetState() pb.RunState
	GetDuplicate() bool
}](
	ctx context.Context,
	c *Client,
	req Req,
	key func(Req) *string,
	call func(context.Context, Req, ...grpc.CallOption) (Resp, error),
) (*Run, error) {
	req = proto.Clone(req).(Req)
	k := key(req)
	autoKey := *k == ""
	if autoKey {
		*k = NewIdempotencyKey()
	}
	head := c.headSeq(ctx)
	resp, attempts, err := retry(ctx, func(ctx context.Context) (Resp, error) {
		return call(ctx, req)
	})
	if err != nil {
		return nil, err
	}
	return &Run{
		RunID:      resp.GetRunId(),
		SessionKey: resp.GetSessionKey(),
		// A generated key that needed a retry may have created the run on the first
		// attempt: that duplicate is our own.
		Duplicate: resp.GetDuplicate() && !(autoKey && attempts > 1),
		State:     resp.GetState(),
		client:    c,
		startSeq:  head,
	}, nil
}

// AgentRun calls AgentService/Run: starts an agent turn and returns a handle to wait for,
// stream or cancel it. When req.IdempotencyKey is empty a random UUID is used, so that
// the submission is retried safely on UNAVAILABLE. req is not modified.
func (c *Client) AgentRun(ctx context.Context, req *pb.AgentServiceRunRequest) (*Run, error) {
	return submit(ctx, c, req,
		func(r *pb.AgentServiceRunRequest) *string { return &r.IdempotencyKey },
		c.Agent.Run)
}

// ChatSend calls ChatService/Send: sends a user message into a session (created on first
// use) and returns the run's handle. An empty idempotency key is generated as in AgentRun.
func (c *Client) ChatSend(ctx context.Context, req *pb.ChatServiceSendRequest) (*Run, error) {
	return submit(ctx, c, req,
		func(r *pb.ChatServiceSendRequest) *string { return &r.IdempotencyKey },
		c.Chat.Send)
}

// SessionsSend calls SessionService/Send: sends into an existing session (NOT_FOUND
// SESSION_NOT_FOUND otherwise) and returns the run's handle. An empty idempotency key is
// generated as in AgentRun.
func (c *Client) SessionsSend(ctx context.Context, req *pb.SessionServiceSendRequest) (*Run, error) {
	return submit(ctx, c, req,
		func(r *pb.SessionServiceSendRequest) *string { return &r.IdempotencyKey },
		c.Sessions.Send)
}

// RunHandle returns a handle for an existing run (read once to learn its session).
func (c *Client) RunHandle(ctx context.Context, runID string) (*Run, error) {
	run, err := c.GetRun(ctx, runID)
	if err != nil {
		return nil, err
	}
	return &Run{
		RunID:      run.GetRunId(),
		SessionKey: run.GetSessionKey(),
		State:      run.GetState(),
		client:     c,
	}, nil
}

// GetRun calls AgentService/GetRun.
func (c *Client) GetRun(ctx context.Context, runID string) (*pb.Run, error) {
	resp, _, err := retry(ctx, func(ctx context.Context) (*pb.GetRunResponse, error) {
		return c.Agent.GetRun(ctx, &pb.GetRunRequest{RunId: runID})
	})
	if err != nil {
		return nil, err
	}
	if resp.GetRun() == nil {
		return nil, protocolErr("AgentService/GetRun returned no run")
	}
	return resp.GetRun(), nil
}

// WaitRun waits up to DefaultWaitTimeout (30 s) for the run to finish; see WaitRunFor.
func (c *Client) WaitRun(ctx context.Context, runID string) (*pb.Run, error) {
	return c.WaitRunFor(ctx, runID, DefaultWaitTimeout)
}

// WaitRunFor waits up to d for the run to finish (the server reports done; see
// IsTerminal), calling AgentService/Wait in chunks of at most 30 s and re-calling on
// UNAVAILABLE. When d passes first it returns the run as it stands, like wait() in the
// other SDKs (check IsTerminal); d <= 0 just reads the run. When ctx ends first (its
// deadline or cancellation) it returns ctx's error; the run itself goes on.
func (c *Client) WaitRunFor(ctx context.Context, runID string, d time.Duration) (*pb.Run, error) {
	if d <= 0 {
		return c.GetRun(ctx, runID)
	}
	end := time.Now().Add(d)
	backoffDelay := 100 * time.Millisecond
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		left := time.Until(end)
		if left <= 0 {
			return c.GetRun(ctx, runID)
		}
		chunk := min(waitChunk, left)
		dl, bounded := ctx.Deadline()
		if bounded {
			// Ask the server to answer done=false a little before ctx's deadline, so that
			// the end of ctx is reported as ctx.Err() rather than a DEADLINE_EXCEEDED race.
			if rem := time.Until(dl) - waitMargin; rem < chunk {
				chunk = max(rem, time.Millisecond)
			}
		}
		// Leave the server room to answer done=false before the call gives up.
		callCtx, cancel := context.WithTimeout(ctx, chunk+10*time.Second)
		resp, err := c.Agent.Wait(callCtx, &pb.AgentServiceWaitRequest{
			RunId:     runID,
			TimeoutMs: max(uint32(chunk/time.Millisecond), 1), // 0 would mean the server's 30 s
		})
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			err = wrapErr(err)
			if bounded && Code(err) == codes.DeadlineExceeded && time.Until(dl) < 2*waitMargin {
				// The server enforced ctx's deadline a moment before ctx itself ended.
				<-ctx.Done()
				return nil, ctx.Err()
			}
			if retryable(err) && time.Now().Add(backoffDelay).Before(end) {
				select {
				case <-time.After(backoffDelay):
				case <-ctx.Done():
					return nil, ctx.Err()
				}
				backoffDelay = min(backoffDelay*2, 2*time.Second)
				continue
			}
			return nil, err
		}
		backoffDelay = 100 * time.Millisecond
		run := resp.GetRun()
		if run == nil {
			return nil, protocolErr("AgentService/Wait returned no run")
		}
		if resp.GetDone() || IsTerminal(run) || !time.Now().Before(end) {
			return run, nil
		}
	}
}

// CancelRun calls AgentService/CancelRun: cancels a queued or running run; a terminal run
// is returned unchanged (so the call is safe to retry).
func (c *Client) CancelRun(ctx context.Context, runID string) (*pb.Run, error) {
	resp, _, err := retry(ctx, func(ctx context.Context) (*pb.CancelRunResponse, error) {
		return c.Agent.CancelRun(ctx, &pb.CancelRunRequest{RunId: runID})
	})
	if err != nil {
		return nil, err
	}
	if resp.GetRun() == nil {
		return nil, protocolErr("AgentService/CancelRun returned no run")
	}
	return resp.GetRun(), nil
}

// DevicesList calls DeviceService/ListDevices: pending pairing requests (oldest first) and
// paired devices.
func (c *Client) DevicesList(ctx context.Context) (*pb.ListDevicesResponse, error) {
	resp, _, err := retry(ctx, func(ctx context.Context) (*pb.ListDevicesResponse, error) {
		return c.Devices.ListDevices(ctx, &pb.ListDevicesRequest{})
	})
	return resp, err
}

// DevicesApprove calls DeviceService/ApprovePairing: approves a pending pairing request
// and returns the paired device (NOT_FOUND PAIRING_REQUEST_NOT_FOUND for an unknown id).
func (c *Client) DevicesApprove(ctx context.Context, requestID string) (*pb.Device, error) {
	resp, err := c.Devices.ApprovePairing(ctx, &pb.ApprovePairingRequest{RequestId: requestID})
	if err != nil {
		return nil, wrapErr(err)
	}
	if resp.GetDevice() == nil {
		return nil, protocolErr("DeviceService/ApprovePairing returned no device")
	}
	return resp.GetDevice(), nil
}

func protocolErr(msg string) *Error {
	return &Error{
		Code:     codes.Internal,
		Message:  "unexpected answer from the gateway: " + msg,
		Metadata: map[string]string{},
	}
}
