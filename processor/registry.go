package processor

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
)

// MaxNameLen is the longest processor name.
const MaxNameLen = 64

// Registry maps processor names to Funcs. Register may be called at any time, from any
// goroutine; Lookup takes no lock (it reads an immutable map that Register replaces), so the
// stage's loops can call it on every request. There is no global registry: a daemon builds
// one (NewRegistry, or Default for one holding the built-ins) and hands it to the stage.
type Registry struct {
	mu    sync.Mutex                       // serialises Register
	funcs atomic.Pointer[map[string]entry] // replaced whole by Register; never written in place
}

// entry is a registered processor: its Func and, for a processor of a Type, the Type.
type entry struct {
	fn  Func
	typ Type
}

// NewRegistry returns an empty registry. The zero Registry is empty too, and ready to use.
func NewRegistry() *Registry { return &Registry{} }

// Default returns a new registry holding the built-in processors hash, list and zset. Each
// call returns a registry of its own.
func Default() *Registry {
	r := NewRegistry()
	if err := RegisterBuiltins(r); err != nil {
		panic(err) // unreachable: a new registry holds nothing the built-ins could collide with
	}
	return r
}

// RegisterBuiltins registers the built-in processors hash, list and zset into r, as Types.
func RegisterBuiltins(r *Registry) error {
	for _, b := range []struct {
		name string
		typ  Type
	}{{"hash", HashType}, {"list", ListType}, {"zset", ZSetType}} {
		if err := r.RegisterType(b.name, b.typ); err != nil {
			return err
		}
	}
	return nil
}

// Register adds fn under name. A name is 1 to MaxNameLen bytes of ASCII letters, digits and
// "_.:-"; registering a name twice is an error (ErrDuplicate), not a replacement.
func (r *Registry) Register(name string, fn Func) error {
	if fn == nil {
		return fmt.Errorf("%w for %q", ErrNilFunc, name)
	}
	return r.add(name, entry{fn: fn})
}

// RegisterType adds the processor of a Type under name: the stage keeps its values decoded
// between calls (CallLive); Lookup returns its TypeFunc.
func (r *Registry) RegisterType(name string, t Type) error {
	if t == nil {
		return fmt.Errorf("%w for %q", ErrNilFunc, name)
	}
	return r.add(name, entry{fn: TypeFunc(t), typ: t})
}

func (r *Registry) add(name string, e entry) error {
	if err := checkName(name); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.snapshot()
	if _, ok := old[name]; ok {
		return fmt.Errorf("%w: %q", ErrDuplicate, name)
	}
	m := maps.Clone(old)
	if m == nil {
		m = map[string]entry{}
	}
	m[name] = e
	r.funcs.Store(&m)
	return nil
}

// Lookup returns the processor registered under name.
func (r *Registry) Lookup(name string) (Func, bool) {
	e, ok := r.snapshot()[name]
	return e.fn, ok
}

// LookupType returns the processor registered under name and, if it was registered as a Type,
// its Type (nil otherwise).
func (r *Registry) LookupType(name string) (Func, Type, bool) {
	e, ok := r.snapshot()[name]
	return e.fn, e.typ, ok
}

// snapshot returns the current map; nil (empty) for a zero Registry.
func (r *Registry) snapshot() map[string]entry {
	if m := r.funcs.Load(); m != nil {
		return *m
	}
	return nil
}

// Names returns the registered names, sorted.
func (r *Registry) Names() []string {
	m := r.snapshot()
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

func checkName(name string) error {
	if len(name) == 0 || len(name) > MaxNameLen {
		return fmt.Errorf("%w: %q is not 1 to %d bytes", ErrBadName, name, MaxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '_' || c == '.' || c == ':' || c == '-'
		if !ok {
			return fmt.Errorf("%w: %q has %q (allowed: letters, digits, _.:-)", ErrBadName, name, c)
		}
	}
	return nil
}
