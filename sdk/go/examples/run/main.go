// Starts an agent run and prints {"runId":..., "sessionKey":...} once it is accepted.
//
//	CLAWPLANE_URL=http://127.0.0.1:18789 CLAWPLANE_TOKEN=... go run ./examples/run "hello"
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	clawplane "github.com/clawplane/clawplane/sdk/go"
	pb "github.com/clawplane/clawplane/sdk/go/gen/clawplane/v1"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: run <message>")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, err := clawplane.ConnectEnv(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer client.Close()
	run, err := client.AgentRun(ctx, &pb.AgentServiceRunRequest{Message: strings.Join(os.Args[1:], " ")})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	out, _ := json.Marshal(map[string]string{"runId": run.RunID, "sessionKey": run.SessionKey})
	fmt.Println(string(out))
}
