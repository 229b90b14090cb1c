package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Peek is the JSON line peek prints for each process it finds.
type Peek struct {
	PID  int    `json:"pid"`
	Comm string `json:"comm"`
	// UID is the process's real user, from /proc/PID/status (world-readable).
	UID int `json:"uid"`
	// Environ is "read" when /proc/PID/environ could be read, else the error. The kernel guards it, like
	// /proc/PID/mem and ptrace, with the same dumpability check (PTRACE_MODE_READ).
	Environ string `json:"environ"`
}

// peek plays an attacker in a pod that shares the node's PID namespace (hostPID) and runs as the
// sidecar's user: for every process whose comm is one of -comm, it tries to read /proc/PID/environ. It
// prints what it saw and never the content it read. Exits 1 when no process matched.
func peek(args []string) int {
	fs := flag.NewFlagSet("peek", flag.ExitOnError)
	var comms listFlag
	fs.Var(&comms, "comm", "process name to look for (repeatable)")
	_ = fs.Parse(args)
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	found := 0
	for _, dir := range dirs {
		pid, err := strconv.Atoi(filepath.Base(dir))
		if err != nil || pid == os.Getpid() {
			continue
		}
		comm, err := os.ReadFile(filepath.Join(dir, "comm"))
		if err != nil || !slices.Contains(comms, strings.TrimSpace(string(comm))) {
			continue
		}
		p := Peek{PID: pid, Comm: strings.TrimSpace(string(comm)), UID: statusUID(dir), Environ: "read"}
		if _, err := os.ReadFile(filepath.Join(dir, "environ")); err != nil {
			p.Environ = err.Error()
		}
		out, _ := json.Marshal(p)
		fmt.Println(string(out))
		found++
	}
	if found == 0 {
		fmt.Fprintf(os.Stderr, "no process named %v\n", []string(comms))
		return 1
	}
	return 0
}

// statusUID is the real UID on the Uid: line of dir/status, or -1.
func statusUID(dir string) int {
	f, err := os.Open(filepath.Join(dir, "status"))
	if err != nil {
		return -1
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "Uid:"); ok {
			if fields := strings.Fields(rest); len(fields) > 0 {
				if uid, err := strconv.Atoi(fields[0]); err == nil {
					return uid
				}
			}
		}
	}
	return -1
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }
