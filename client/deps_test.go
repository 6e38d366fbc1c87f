package client

import (
	"os/exec"
	"strings"
	"testing"
)

// TestSingleNodeClientLinksNoEtcd: an application that imports only package client (one node,
// or StaticNodes) must not link etcd's client and what it brings (gRPC, protobuf, zap, bbolt),
// nor the daemon's packages. Discovery through etcd is package client/etcdnodes.
func TestSingleNodeClientLinksNoEtcd(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("this test runs `go list`: %v", err)
	}
	out, err := exec.Command(gobin, "list", "-deps", "-f", "{{.ImportPath}}", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps listed only %v", deps)
	}
	forbidden := []string{
		"go.etcd.io/", "google.golang.org/grpc", "google.golang.org/protobuf", "github.com/golang/protobuf",
		"github.com/gogo/protobuf", "go.uber.org/zap", "github.com/pipecache/pipecache/nameservice",
		"github.com/pipecache/pipecache/stages",
	}
	for _, dep := range deps {
		for _, f := range forbidden {
			if strings.HasPrefix(dep, f) {
				t.Errorf("package client depends on %s (forbidden: %s*)", dep, f)
			}
		}
	}
}
