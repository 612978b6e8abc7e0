// Package clawplane is the Go SDK for the clawplane gateway: the generated gRPC clients
// (package github.com/clawplane/clawplane/sdk/go/gen/clawplane/v1) plus a thin layer with
// bearer-token auth, run handles (wait, cancel, stream the reply), an auto-resuming event
// watch and typed errors carrying the google.rpc.ErrorInfo reason.
//
//	c, err := clawplane.ConnectEnv(ctx) // CLAWPLANE_URL, CLAWPLANE_TOKEN
//	run, err := c.AgentRun(ctx, &pb.AgentServiceRunRequest{Message: "hello"})
//	for u, err := range run.Stream(ctx) { ... }
//	final, err := run.Wait(ctx)
package clawplane
