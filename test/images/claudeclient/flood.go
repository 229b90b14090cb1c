package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// FloodResult is the JSON line flood prints: how many requests got each status, and the Retry-After
// values of the 503s.
type FloodResult struct {
	Statuses   map[int]int `json:"statuses"`
	RetryAfter []string    `json:"retryAfter,omitempty"`
	Capacity   int         `json:"capacity"` // 503s whose error names the sidecar's capacity rule
	Errors     []string    `json:"errors,omitempty"`
	Millis     int64       `json:"millis"`
}

// flood sends n Messages requests at once, each with a prompt of mib MiB, straight to
// ANTHROPIC_BASE_URL (no SDK: its retries and buffering are not what is tested). The bodies are
// generated as they are sent, so the app's own memory stays small whatever the sizes.
func flood(args []string) int {
	fs := flag.NewFlagSet("flood", flag.ExitOnError)
	n := fs.Int("n", 12, "concurrent requests")
	mib := fs.Int("mib", 30, "prompt size of each request, in MiB")
	model := fs.String("model", "claude-haiku-4-5", "model to call")
	_ = fs.Parse(args)
	url := strings.TrimRight(os.Getenv("ANTHROPIC_BASE_URL"), "/") + "/v1/messages"
	res := FloodResult{Statuses: map[int]int{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	t0 := time.Now()
	client := &http.Client{Timeout: 2 * time.Minute}
	for range *n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, retry, body, err := floodOne(client, url, *model, int64(*mib)<<20)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				res.Errors = append(res.Errors, err.Error())
				return
			}
			res.Statuses[status]++
			if status == http.StatusServiceUnavailable {
				res.RetryAfter = append(res.RetryAfter, retry)
				if strings.Contains(body, "capacity") {
					res.Capacity++
				}
			}
		}()
	}
	wg.Wait()
	res.Millis = time.Since(t0).Milliseconds()
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
	if len(res.Errors) > 0 {
		return 1
	}
	return 0
}

// floodOne sends one request with a prompt of size bytes and returns its status, Retry-After and the
// start of its body.
func floodOne(c *http.Client, url, model string, size int64) (int, string, string, error) {
	head := []byte(`{"model":"` + model + `","max_tokens":16,"messages":[{"role":"user","content":"`)
	tail := []byte(`"}]}`)
	body := io.MultiReader(bytes.NewReader(head), io.LimitReader(repeat('a'), size), bytes.NewReader(tail))
	req, err := http.NewRequest(http.MethodPost, url, body)
	if err != nil {
		return 0, "", "", err
	}
	req.ContentLength = int64(len(head)) + size + int64(len(tail))
	req.Header.Set("content-type", "application/json")
	req.Header.Set("anthropic-version", "2023-06-01")
	req.Header.Set("x-api-key", os.Getenv("ANTHROPIC_API_KEY"))
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	start, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("retry-after"), string(start), nil
}

// repeat is an endless reader of b.
type repeat byte

func (r repeat) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}
