package clawplane

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestFromStatusDecodesDetails(t *testing.T) {
	s, err := status.New(codes.InvalidArgument, "bad").WithDetails(
		&errdetails.ErrorInfo{Reason: "INVALID_FIELD", Domain: ErrorDomain, Metadata: map[string]string{"k": "v"}},
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "message", Description: "must not be empty"}}},
		&errdetails.RetryInfo{RetryDelay: durationpb.New(42 * time.Second)},
	)
	if err != nil {
		t.Fatal(err)
	}
	e := wrapErr(fmt.Errorf("wrapped: %w", s.Err()))
	var ce *Error
	if !errors.As(e, &ce) {
		t.Fatalf("not an *Error: %T", e)
	}
	if ce.Code != codes.InvalidArgument || ce.Reason != "INVALID_FIELD" || ce.Domain != ErrorDomain ||
		ce.Metadata["k"] != "v" || ce.RetryDelay != 42*time.Second || len(ce.FieldViolations) != 1 ||
		ce.FieldViolations[0] != (FieldViolation{"message", "must not be empty"}) {
		t.Fatalf("decoded %+v", ce)
	}
	if status.Code(ce) != codes.InvalidArgument || Reason(s.Err()) != "INVALID_FIELD" {
		t.Fatal("helpers")
	}
	if Reason(errors.New("plain")) != "" || Code(nil) != codes.OK || Code(errors.New("x")) != codes.Unknown {
		t.Fatal("helpers on non-status errors")
	}
	if m := FromStatus(s).Error(); m != "clawplane: InvalidArgument: bad (INVALID_FIELD)" {
		t.Fatalf("message %q", m)
	}
}

func TestResumable(t *testing.T) {
	tagged := func(c codes.Code, reason string) *Error {
		return &Error{Code: c, Reason: reason, Metadata: map[string]string{}}
	}
	cases := []struct {
		e    *Error
		want bool
	}{
		{tagged(codes.Unavailable, ""), true},
		{tagged(codes.Unavailable, "SHUTTING_DOWN"), true},
		{tagged(codes.Aborted, "SUBSCRIBER_LAGGED"), true},
		{tagged(codes.Aborted, "OTHER"), false},
		{tagged(codes.OutOfRange, "CURSOR_EXPIRED"), false},
		{tagged(codes.Internal, ""), true}, // transport-level (untagged)
		{tagged(codes.Internal, "BUG"), false},
		{tagged(codes.Unauthenticated, "TOKEN_REVOKED"), false},
	}
	for _, c := range cases {
		if got := resumable(c.e); got != c.want {
			t.Errorf("resumable(%s %s) = %v", c.e.Code, c.e.Reason, got)
		}
	}
}

func TestParseURL(t *testing.T) {
	cases := []struct {
		in     string
		target string
		tls    bool
		ok     bool
	}{
		{"http://127.0.0.1:18789", "127.0.0.1:18789", false, true},
		{"127.0.0.1:5", "127.0.0.1:5", false, true},
		{"https://gw.example.com", "gw.example.com:443", true, true},
		{"http://localhost/", "localhost:80", false, true},
		{"", "127.0.0.1:18789", false, true},
		{"ftp://x:1", "", false, false},
		{"http://x:1/path", "", false, false},
	}
	for _, c := range cases {
		target, useTLS, err := parseURL(c.in)
		if (err == nil) != c.ok || target != c.target || useTLS != c.tls {
			t.Errorf("parseURL(%q) = %q %v %v", c.in, target, useTLS, err)
		}
	}
}

func TestNewIdempotencyKey(t *testing.T) {
	a, b := NewIdempotencyKey(), NewIdempotencyKey()
	if a == b || len(a) != 36 || a[14] != '4' {
		t.Fatalf("keys %q %q", a, b)
	}
}
