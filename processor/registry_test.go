package processor

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
)

func nop(Input, *Output) error { return nil }

func TestRegister(t *testing.T) {
	tests := []struct {
		name string
		fn   Func
		want error
	}{
		{"counter", nop, nil},
		{"game.score:v2-beta_1", nop, nil},
		{strings.Repeat("x", MaxNameLen), nop, nil},
		{"", nop, ErrBadName},
		{strings.Repeat("x", MaxNameLen+1), nop, ErrBadName},
		{"has space", nop, ErrBadName},
		{"slash/y", nop, ErrBadName},
		{"naïve", nop, ErrBadName},
		{"nilfunc", nil, ErrNilFunc},
		{"hash", nop, ErrDuplicate}, // a built-in of Default
	}
	r := Default()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := r.Register(tt.name, tt.fn)
			if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
				t.Fatalf("Register(%q) = %v, want %v", tt.name, err, tt.want)
			}
			_, ok := r.Lookup(tt.name)
			if tt.want == nil && !ok {
				t.Fatalf("%q registered but not found", tt.name)
			}
		})
	}
}

func TestRegisterTwice(t *testing.T) {
	r := NewRegistry()
	if err := r.Register("p", nop); err != nil {
		t.Fatal(err)
	}
	called := false
	err := r.Register("p", func(Input, *Output) error { called = true; return nil })
	if !errors.Is(err, ErrDuplicate) {
		t.Fatalf("second Register = %v, want ErrDuplicate", err)
	}
	fn, _ := r.Lookup("p")
	if err := fn(Input{}, &Output{}); err != nil || called {
		t.Fatalf("the second registration replaced the first")
	}
}

func TestZeroRegistry(t *testing.T) {
	var r Registry
	if _, ok := r.Lookup("x"); ok || len(r.Names()) != 0 {
		t.Fatal("the zero Registry is not empty")
	}
	if err := r.Register("x", nop); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Lookup("x"); !ok {
		t.Fatal("x not found")
	}
}

func TestDefault(t *testing.T) {
	a, b := Default(), Default()
	if got, want := a.Names(), []string{"hash", "list", "zset"}; !slices.Equal(got, want) {
		t.Fatalf("Default holds %v, want %v", got, want)
	}
	if err := a.Register("mine", nop); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.Lookup("mine"); ok {
		t.Fatal("two Default registries share their entries")
	}
	if _, ok := NewRegistry().Lookup("hash"); ok {
		t.Fatal("NewRegistry is not empty")
	}
	if err := RegisterBuiltins(a); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("RegisterBuiltins twice = %v, want ErrDuplicate", err)
	}
}

// TestRegistryConcurrent registers while other goroutines look up (run with -race).
func TestRegistryConcurrent(t *testing.T) {
	r := Default()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				if g == 0 {
					if err := r.Register(fmt.Sprintf("p%d", i), nop); err != nil {
						t.Error(err)
						return
					}
				} else if _, ok := r.Lookup("zset"); !ok {
					t.Error("zset disappeared")
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := len(r.Names()); n != 203 {
		t.Fatalf("%d names, want 203", n)
	}
}
