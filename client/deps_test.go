package client

import (
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sdkLinks is every package of pipecache's the SDK may link: itself, the protocol
// (transport/wire, task), the datagram layer it shares with the server (transport/dgram) and
// the timing wheel. Nothing of the daemon's: not the server's transport, the stages, the
// nameservice.
var sdkLinks = map[string]bool{
	"client": true, "client/kcpnet": true,
	"transport/dgram": true, "transport/wire": true, "task": true, "timer": true,
}

// TestDependenciesStaySmall: an application that imports only package client (one node, or
// StaticNodes), or only its transport client/kcpnet, links none of the daemon's packages
// (sdkLinks), nor etcd's client and what it brings (gRPC, protobuf, zap, bbolt). Discovery
// through etcd is package client/etcdnodes.
func TestDependenciesStaySmall(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("this test runs `go list`: %v", err)
	}
	const module = "github.com/pipecache/pipecache/"
	forbidden := []string{"go.etcd.io/", "google.golang.org/grpc", "google.golang.org/protobuf",
		"github.com/golang/protobuf", "github.com/gogo/protobuf", "go.uber.org/zap"}
	for _, pkg := range []string{".", "./kcpnet"} {
		out, err := exec.Command(gobin, "list", "-deps", "-f", "{{.ImportPath}}", pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		deps := strings.Fields(string(out))
		if len(deps) < 10 {
			t.Fatalf("go list -deps %s listed only %v", pkg, deps)
		}
		for _, dep := range deps {
			if own, ok := strings.CutPrefix(dep, module); ok && !sdkLinks[own] {
				t.Errorf("package %s depends on %s, not one of the SDK's", pkg, dep)
			}
			for _, f := range forbidden {
				if strings.HasPrefix(dep, f) {
					t.Errorf("package %s depends on %s (forbidden: %s*)", pkg, dep, f)
				}
			}
		}
	}
}

// TestREADMECountsClientDependencies: the number of packages README says package client
// depends on is what its own command (go list -deps, not the standard library) prints.
func TestREADMECountsClientDependencies(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("this test runs `go list`: %v", err)
	}
	out, err := exec.Command(gobin, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("package `client` depends on (\\d+) packages").FindSubmatch(readme)
	if m == nil {
		t.Fatal("README no longer says how many packages package client depends on")
	}
	if got, said := len(strings.Fields(string(out))), string(m[1]); strconv.Itoa(got) != said {
		t.Errorf("README says package client depends on %s packages outside the standard library; go list -deps counts %d", said, got)
	}
}

// TestREADMEStatesTheSDKHeartbeat: README gives the SDK's default heartbeat, and its lease (three
// of it), as the SDK has them.
func TestREADMEStatesTheSDKHeartbeat(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	beat := newClient("127.0.0.1:1", nil).opts.heartbeat
	secs := func(d time.Duration) string { return strings.TrimSuffix(d.String(), "s") + " s" }
	want := "the Go SDK proposes " + secs(beat) + " (`client.WithHeartbeat`), so its lease is " + secs(3*beat)
	if !strings.Contains(strings.Join(strings.Fields(string(readme)), " "), want) {
		t.Errorf("README does not say %q", want)
	}
}
