package clawplane_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	clawplane "github.com/clawplane/clawplane/sdk/go"
	pb "github.com/clawplane/clawplane/sdk/go/gen/clawplane/v1"
)

// device is an OpenClaw device identity: an Ed25519 key; id = hex SHA-256 of the raw
// public key (proto/src/device_auth.rs).
type device struct {
	priv ed25519.PrivateKey
	pub  string
	id   string
}

func newDevice(t *testing.T) *device {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(pub)
	return &device{priv: priv, pub: base64.RawURLEncoding.EncodeToString(pub), id: hex.EncodeToString(sum[:])}
}

// connect does DeviceService/Challenge then ConnectDevice with a v3 signature over
// `v3|deviceId|clientId|clientMode|role|scopes|signedAt|token|nonce|platform|deviceFamily`.
func (d *device) connect(ctx context.Context, c *clawplane.Client, token string, scopes []string) (*pb.ConnectDeviceResponse, error) {
	ch, err := c.Devices.Challenge(ctx, &pb.ChallengeRequest{})
	if err != nil {
		return nil, err
	}
	signedAt := ch.GetTs()
	payload := fmt.Sprintf("v3|%s|cli|cli|operator|%s|%d|%s|%s|linux|",
		d.id, strings.Join(scopes, ","), signedAt, token, ch.GetNonce())
	sig := ed25519.Sign(d.priv, []byte(payload))
	resp, err := c.Devices.ConnectDevice(ctx, &pb.ConnectDeviceRequest{
		Device: &pb.DeviceProof{
			Id:        d.id,
			PublicKey: d.pub,
			Signature: base64.RawURLEncoding.EncodeToString(sig),
			SignedAt:  signedAt,
			Nonce:     ch.GetNonce(),
		},
		ClientId:    "cli",
		ClientMode:  "cli",
		Role:        "operator",
		Scopes:      scopes,
		Platform:    "linux",
		DisplayName: "go sdk test device",
		Token:       token,
	})
	if s, isStatus := status.FromError(err); err != nil && isStatus {
		return nil, clawplane.FromStatus(s) // raw generated clients return plain statuses
	}
	return resp, err
}

func TestDevicesListAndApprove(t *testing.T) {
	t.Parallel()
	g := startGateway(t, map[string]any{
		"gateway": map[string]any{"nodes": map[string]any{"pairing": map[string]any{"autoApproveLocal": false}}},
	})
	c := g.connect(t, "")
	ctx := testCtx(t, 60*time.Second)

	list, err := c.DevicesList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetPending()) != 0 || len(list.GetPaired()) != 0 {
		t.Fatalf("fresh gateway has devices: %v", list)
	}

	// Approving an unknown request is a typed NOT_FOUND.
	_, err = c.DevicesApprove(ctx, "no-such-request")
	e := asError(t, err, codes.NotFound, "PAIRING_REQUEST_NOT_FOUND")
	if e.Metadata["requestId"] != "no-such-request" {
		t.Fatalf("metadata: %v", e.Metadata)
	}

	// A new device connecting creates a pairing request.
	dev := newDevice(t)
	scopes := []string{"operator.read", "operator.write"}
	_, err = dev.connect(ctx, c, g.token, scopes)
	e = asError(t, err, codes.FailedPrecondition, "PAIRING_REQUIRED")
	requestID := e.Metadata["requestId"]
	if requestID == "" || e.Metadata["deviceId"] != dev.id {
		t.Fatalf("PAIRING_REQUIRED metadata: %v", e.Metadata)
	}

	list, err = c.DevicesList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetPending()) != 1 || list.GetPending()[0].GetRequestId() != requestID || list.GetPending()[0].GetDeviceId() != dev.id {
		t.Fatalf("pending: %v", list.GetPending())
	}

	approved, err := c.DevicesApprove(ctx, requestID)
	if err != nil {
		t.Fatal(err)
	}
	if approved.GetDeviceId() != dev.id {
		t.Fatalf("approved device %q, want %q", approved.GetDeviceId(), dev.id)
	}

	// The approved device now connects and gets a device token with its scopes.
	ok, err := dev.connect(ctx, c, "", scopes)
	if err != nil {
		t.Fatalf("approved device connects: %v", err)
	}
	if ok.GetDeviceToken() == "" || ok.GetDeviceId() != dev.id {
		t.Fatalf("connect response: %v", ok)
	}
	list, err = c.DevicesList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetPending()) != 0 || len(list.GetPaired()) != 1 || list.GetPaired()[0].GetDeviceId() != dev.id {
		t.Fatalf("after approval: %v", list)
	}

	// The device token works as a bearer token with the approved scopes only.
	dc := g.connect(t, ok.GetDeviceToken())
	if _, err := dc.Status(ctx); err != nil {
		t.Fatalf("device token reads status: %v", err)
	}
	_, err = dc.DevicesList(ctx)
	asError(t, err, codes.PermissionDenied, "MISSING_SCOPE")
}
