package client

import (
	"os/exec"
	"strings"
	"testing"
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
