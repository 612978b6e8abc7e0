// Waits for a run to finish and prints the final Run as canonical proto JSON (one line,
// e.g. {"runId":"...","state":"RUN_STATE_SUCCEEDED",...}).
//
//	CLAWPLANE_URL=http://127.0.0.1:18789 CLAWPLANE_TOKEN=... go run ./examples/wait <runId>
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	clawplane "github.com/clawplane/clawplane/sdk/go"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: wait <runId>")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	client, err := clawplane.ConnectEnv(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer client.Close()
	run, err := client.WaitRunFor(ctx, os.Args[1], 4*time.Minute)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	raw, err := protojson.Marshal(run)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// protojson deliberately varies its whitespace; print it compact and stable.
	var out bytes.Buffer
	if err := json.Compact(&out, raw); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(out.String())
}
