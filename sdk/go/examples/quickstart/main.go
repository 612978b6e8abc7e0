// Quickstart: connect with CLAWPLANE_URL / CLAWPLANE_TOKEN, start an agent run, print the
// reply as it streams, then the final state.
//
//	go run ./examples/quickstart "hello there"
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	clawplane "github.com/clawplane/clawplane/sdk/go"
	pb "github.com/clawplane/clawplane/sdk/go/gen/clawplane/v1"
)

func main() {
	message := "hello from Go"
	if len(os.Args) > 1 {
		message = strings.Join(os.Args[1:], " ")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	client, err := clawplane.ConnectEnv(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	status, err := client.Status(ctx)
	if err != nil {
		log.Fatalf("status: %v (reason %q)", err, clawplane.Reason(err))
	}
	fmt.Printf("gateway %s, default agent %s\n", status.GetVersion(), status.GetDefaultAgentId())

	run, err := client.AgentRun(ctx, &pb.AgentServiceRunRequest{Message: message})
	if err != nil {
		log.Fatalf("agent run: %v", err)
	}
	fmt.Printf("run %s in session %s\n", run.RunID, run.SessionKey)

	for update, err := range run.Stream(ctx) {
		if err != nil {
			log.Fatalf("stream: %v", err)
		}
		switch {
		case update.Done:
			fmt.Printf("\nfinal state: %s\n", update.Run.GetState())
		case update.Run != nil:
			// A non-terminal state change (RUNNING, or a retry after an interruption).
		default:
			fmt.Print(update.Delta)
		}
	}

	final, err := run.Wait(ctx)
	if err != nil {
		log.Fatalf("wait: %v", err)
	}
	fmt.Printf("reply: %s\n", final.GetReplyText())
}
