// Command claudeclient is the app of the real-pod tests and the demo: a small client built on the
// official Anthropic Go SDK, configured only from its environment (ANTHROPIC_BASE_URL and
// ANTHROPIC_API_KEY, which the webhook injects), as any app would be. Its image has no shell, so it is
// one binary with two verbs:
//
//	claudeclient serve [-call-at-start M]     # the Deployment's main process: wait until SIGTERM
//	claudeclient call -model M [-max-tokens N] [-stream]   # one call; prints one JSON line
//	claudeclient peek -comm NAME...   # what an attacker sharing the PID namespace can read
//	claudeclient flood [-n N] [-mib M]   # N requests of M MiB at once; prints one JSON line
//
// call exits 0 on a 200, 3 on an API error (its status and body are printed), 1 on anything else.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: claudeclient serve | call -model M [-max-tokens N] [-stream] | peek -comm NAME... | flood [-n N] [-mib M]")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "serve":
		serve(os.Args[2:])
	case "call":
		os.Exit(call(os.Args[2:]))
	case "peek":
		os.Exit(peek(os.Args[2:]))
	case "flood":
		os.Exit(flood(os.Args[2:]))
	default:
		fmt.Fprintf(os.Stderr, "unknown verb %q: want serve, call, peek or flood\n", os.Args[1])
		os.Exit(2)
	}
}

// serve waits for SIGTERM. With -call-at-start it first makes one call, as an app that talks to Claude
// as soon as it starts would: with the native sidecar it must succeed, since the app container starts
// only once the sidecar is ready.
func serve(args []string) {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	model := fs.String("call-at-start", "", "model to call once at start (empty: none)")
	_ = fs.Parse(args)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *model != "" {
		call([]string{"-model", *model})
	}
	fmt.Println(`{"msg":"claudeclient serving"}`)
	<-ctx.Done()
}

// Result is the JSON line call prints.
type Result struct {
	Model        string `json:"model"`
	Status       int    `json:"status"`
	Text         string `json:"text,omitempty"`
	InputTokens  int64  `json:"inputTokens,omitempty"`
	OutputTokens int64  `json:"outputTokens,omitempty"`
	Error        string `json:"error,omitempty"`
	Millis       int64  `json:"millis"`
}

func call(args []string) int {
	fs := flag.NewFlagSet("call", flag.ExitOnError)
	model := fs.String("model", "claude-haiku-4-5", "model to call")
	maxTokens := fs.Int64("max-tokens", 256, "max_tokens of the request")
	stream := fs.Bool("stream", false, "stream the answer (SSE)")
	timeout := fs.Duration("timeout", 30*time.Second, "how long the call may take")
	_ = fs.Parse(args)
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	// option.WithMaxRetries(0): a test must see the first answer, not a retried one.
	sdk := anthropic.NewClient(option.WithMaxRetries(0))
	params := anthropic.MessageNewParams{Model: *model, MaxTokens: *maxTokens,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Say hello"))}}
	t0 := time.Now()
	res := Result{Model: *model}
	var msg anthropic.Message
	var err error
	if *stream {
		s := sdk.Messages.NewStreaming(ctx, params)
		for s.Next() {
			if err = msg.Accumulate(s.Current()); err != nil {
				break
			}
		}
		if err == nil {
			err = s.Err()
		}
	} else {
		var m *anthropic.Message
		if m, err = sdk.Messages.New(ctx, params); m != nil {
			msg = *m
		}
	}
	res.Millis = time.Since(t0).Milliseconds()
	code := 0
	var apiErr *anthropic.Error
	switch {
	case errors.As(err, &apiErr):
		res.Status, res.Error, code = apiErr.StatusCode, apiErr.RawJSON(), 3
	case err != nil:
		res.Error, code = err.Error(), 1
	default:
		res.Status = 200
		for _, b := range msg.Content {
			res.Text += b.Text
		}
		res.InputTokens, res.OutputTokens = msg.Usage.InputTokens, msg.Usage.OutputTokens
	}
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
	return code
}
