package clawplane

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrorDomain is the google.rpc.ErrorInfo domain clawplane uses.
const ErrorDomain = "clawplane.dev"

// FieldViolation is one google.rpc.BadRequest field violation. Field names are the JSON
// names of the request fields (message, sessionKey, ...).
type FieldViolation struct {
	Field       string
	Description string
}

// Error is a gRPC status from the gateway (or the transport underneath) with its rich
// details decoded: every clawplane error carries a google.rpc.ErrorInfo whose stable
// Reason (e.g. RUN_NOT_FOUND, IDEMPOTENCY_KEY_CONFLICT) is what programs should match on.
//
// Every method of Client returns errors of this type for failed RPCs; use errors.As, or
// the helpers Reason and Code.
type Error struct {
	// Code is the gRPC status code.
	Code codes.Code
	// Message is the status message.
	Message string
	// Reason is the ErrorInfo reason ("" when the status had none, e.g. transport errors).
	Reason string
	// Domain is the ErrorInfo domain ("clawplane.dev" for gateway errors).
	Domain string
	// Metadata is the ErrorInfo metadata (e.g. runId, oldestSeq, missingScope). Never nil.
	Metadata map[string]string
	// FieldViolations lists the google.rpc.BadRequest violations, if any.
	FieldViolations []FieldViolation
	// RetryDelay is the google.rpc.RetryInfo delay (0 when absent).
	RetryDelay time.Duration
	// TLS is true when the TLS connection failed: the gateway's certificate was refused
	// (e.g. "certificate fingerprint mismatch: expected X, got Y", an unknown authority)
	// or an http:// URL points at a port serving TLS. Code is UNAVAILABLE, but such an
	// error is not retried.
	TLS bool

	status *status.Status
}

// Error implements the error interface: "<code>: <message> (<reason>)".
func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = e.Code.String()
	}
	if e.Reason != "" {
		return fmt.Sprintf("clawplane: %s: %s (%s)", e.Code, msg, e.Reason)
	}
	return fmt.Sprintf("clawplane: %s: %s", e.Code, msg)
}

// GRPCStatus returns the status as received, so status.FromError and status.Code work on
// an *Error (and on errors wrapping one).
func (e *Error) GRPCStatus() *status.Status {
	if e.status == nil {
		return status.New(e.Code, e.Message)
	}
	return e.status
}

// Is makes errors.Is(err, context.DeadlineExceeded) and errors.Is(err, context.Canceled)
// hold for a call that failed because its context ended (codes DEADLINE_EXCEEDED and
// CANCELED).
func (e *Error) Is(target error) bool {
	return (target == context.DeadlineExceeded && e.Code == codes.DeadlineExceeded) ||
		(target == context.Canceled && e.Code == codes.Canceled)
}

// Retryable reports whether a failed idempotent call may be retried as-is (AIP-194: only
// UNAVAILABLE).
func (e *Error) Retryable() bool { return e.Code == codes.Unavailable && !e.TLS }

// retryable reports whether err is an *Error (or gRPC status) that may be retried.
func retryable(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.Retryable()
	}
	return status.Code(err) == codes.Unavailable
}

// FromStatus decodes a gRPC status and its details into an *Error.
func FromStatus(s *status.Status) *Error {
	e := &Error{
		Code:     s.Code(),
		Message:  s.Message(),
		Metadata: map[string]string{},
		status:   s,
	}
	for _, d := range s.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			if e.Reason == "" {
				e.Reason = d.GetReason()
				e.Domain = d.GetDomain()
				for k, v := range d.GetMetadata() {
					e.Metadata[k] = v
				}
			}
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				e.FieldViolations = append(e.FieldViolations, FieldViolation{
					Field:       v.GetField(),
					Description: v.GetDescription(),
				})
			}
		case *errdetails.RetryInfo:
			if d.GetRetryDelay() != nil {
				e.RetryDelay = d.GetRetryDelay().AsDuration()
			}
		}
	}
	return e
}

// wrapErr turns an error returned by a generated client into an *Error; nil stays nil and
// errors that are not gRPC statuses are returned unchanged.
func wrapErr(err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	if s, ok := status.FromError(err); ok {
		e := FromStatus(s)
		// grpc-go reports a refused certificate on a re-dial as UNAVAILABLE
		// "connection error: desc = \"transport: authentication handshake failed: …\"".
		if e.Code == codes.Unavailable && e.Reason == "" && strings.Contains(e.Message, "authentication handshake failed") {
			e.TLS = true
		}
		return e
	}
	return err
}

// Reason returns the ErrorInfo reason of err (an *Error or any gRPC status error), or ""
// when it has none.
func Reason(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	if s, ok := status.FromError(err); ok {
		return FromStatus(s).Reason
	}
	return ""
}

// Code returns the gRPC code of err: OK for nil, the status code of an *Error or gRPC
// status error, Unknown otherwise.
func Code(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return status.Code(err)
}

// hasErrorInfo reports whether the status was tagged by the gateway (every gateway error
// has an ErrorInfo; transport-level failures detected locally do not).
func hasErrorInfo(e *Error) bool { return e.Reason != "" }
