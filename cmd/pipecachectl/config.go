package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/pipecache/pipecache/buildinfo"
)

// config is what the command line says.
type config struct {
	addr       string        // one server
	cluster    string        // or a cluster: etcd://host:2379/prefix or host:port,host:port
	token      string        // auth token
	keyFile    string        // pre-shared encryption key file
	legacyCFB  bool          // the key in kcp-go's older AES-CFB framing
	timeout    time.Duration // bound of each command, its dial included
	format     format
	stdinValue bool     // -x: the VALUE (or last argument) is read from stdin
	args       []string // the command and its arguments, if given
}

// target is what the commands talk to, as the prompt shows it.
func (c config) target() string {
	if c.cluster != "" {
		return c.cluster
	}
	return c.addr
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

// parseFlags reads the flags. With done set the program exits with code at once: -h (0, the
// help on stdout), -version (0), or a usage error (2, said on stderr).
func parseFlags(args []string, stdout, stderr io.Writer) (cfg config, code int, done bool) {
	fs := flag.NewFlagSet("pipecachectl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {}
	fs.StringVar(&cfg.addr, "addr", envOr("PIPECACHE_ADDR", "127.0.0.1:7070"), "server address (env PIPECACHE_ADDR)")
	fs.StringVar(&cfg.cluster, "cluster", envOr("PIPECACHE_CLUSTER", ""), "a cluster instead of one server: etcd://host:2379/prefix or host:port,host:port,...\n(env PIPECACHE_CLUSTER; an explicit -addr wins over the environment)")
	fs.StringVar(&cfg.token, "token", envOr("PIPECACHE_TOKEN", ""), "auth token (env PIPECACHE_TOKEN)")
	fs.StringVar(&cfg.keyFile, "crypt-key-file", envOr("PIPECACHE_CRYPT_KEY_FILE", ""), "encrypt with the AES key in this file, as the server's -crypt-key-file (env PIPECACHE_CRYPT_KEY_FILE)")
	fs.BoolVar(&cfg.legacyCFB, "crypt-legacy-cfb", false, "with -crypt-key-file: the older AES-CFB framing, for a server started with -crypt-legacy-cfb")

	fs.DurationVar(&cfg.timeout, "timeout", 5*time.Second, "time limit of each command, connecting included")
	raw := fs.Bool("raw", false, "print only the data (a get prints the value alone); versions and (nil) go to stderr")
	asJSON := fs.Bool("json", false, "print each command's result, and each error, as one JSON object on a line of its own (mget: {\"items\": [...]})")
	fs.BoolVar(&cfg.stdinValue, "x", false, "read the command's VALUE (for other commands its last argument) from stdin, as is")
	version := fs.Bool("version", false, "print the version and exit")
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		printUsage(stdout, fs)
		return cfg, 0, true
	case err != nil: // the flag package said what is wrong
		fmt.Fprintln(stderr, "pipecachectl -h lists the flags and commands")
		return cfg, 2, true
	case *version:
		fmt.Fprintln(stdout, buildinfo.Read().VersionLine("pipecachectl"))
		return cfg, 0, true
	}
	cfg.args = fs.Args()
	if err := cfg.settle(fs, *raw, *asJSON); err != nil {
		fmt.Fprintf(stderr, "pipecachectl: %v\n", err)
		return cfg, 2, true
	}
	return cfg, 0, false
}

// settle resolves what the flags say together.
func (c *config) settle(fs *flag.FlagSet, raw, asJSON bool) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case set["addr"] && set["cluster"]:
		return errors.New("-addr and -cluster: give one")
	case set["addr"]:
		c.cluster = "" // an explicit -addr wins over PIPECACHE_CLUSTER
	}
	switch {
	case raw && asJSON:
		return errors.New("-raw and -json: give one")
	case raw:
		c.format = formatRaw
	case asJSON:
		c.format = formatJSON
	}
	if c.timeout <= 0 {
		return fmt.Errorf("-timeout %v: must be positive", c.timeout)
	}
	if c.stdinValue && len(c.args) == 0 {
		return errors.New("-x needs a command on the command line (pipecachectl -x set KEY < file)")
	}
	return nil
}

func printUsage(w io.Writer, fs *flag.FlagSet) {
	io.WriteString(w, intro)
	io.WriteString(w, "\nCommands:\n")
	commandList(w)
	io.WriteString(w, "\n"+shellDoc)
	io.WriteString(w, "\nFlags:\n")
	fs.SetOutput(w)
	fs.PrintDefaults()
	io.WriteString(w, "\n"+exitDoc)
	io.WriteString(w, "\nExamples:\n"+strings.Join(examples, "\n")+"\n")
}

var examples = []string{
	`  pipecachectl set user:1 alice 1h`,
	`  pipecachectl -raw get user:1 > value.txt`,
	`  pipecachectl -x set blob:7 < photo.jpg`,
	`  printf 'set a 1\nincr a 41\nget a\n' | pipecachectl -json`,
	`  pipecachectl watch 'room:42:*'`,
	`  PIPECACHE_CLUSTER=etcd://127.0.0.1:2379/demo pipecachectl owner player:42`,
}
