// Command pipecachectl talks to a pipecached server, or to a cluster of them, like redis-cli
// or etcdctl.
//
//	pipecachectl [-addr host:port] [-token T] [-timeout 5s] [-raw|-json] [-x] COMMAND [ARG...]
//	pipecachectl [FLAGS]                       (commands from stdin: a shell on a terminal)
//
// The commands (pipecachectl -h, or help in the shell, lists them with their arguments; help
// COMMAND describes one):
//
//	get KEY                          mget KEY...
//	set|add|replace KEY VALUE [TTL]  cas KEY VALUE VERSION [TTL]
//	del KEY                          incr|decr KEY [DELTA]
//	touch KEY TTL                    watch KEY|PREFIX*   (every change, until Ctrl-C)
//	exec KEY PROC [ARGS...]          (a processor: zset incr 5 alice, hash get name...)
//	stats | ping | slowlog           help [COMMAND]
//
// A TTL is seconds ("30") or a Go duration ("30s", "5m"). With -cluster etcd://host:2379/prefix
// (or a comma-separated node list, or PIPECACHE_CLUSTER; an explicit -addr wins) the data
// commands go through the SDK's Cluster, each key to the node that owns it, and two more
// commands answer: nodes (the live nodes) and owner KEY (the node that serves KEY).
//
// Output: redis-cli-like by default; with -raw only the data (get prints the value and
// nothing else; versions and (nil) go to stderr); with -json one JSON object per command or
// error, on one line (mget's is {"items": [...]}, one item per key). With -x the VALUE (for
// other commands the last argument) is read from stdin as is.
//
// Without a command, commands are read from stdin, one per line, quoted as in redis-cli
// ("hello world", 'it\'s', \n and \xHH in double quotes). On a terminal it is a shell with
// line editing, history (~/.pipecachectl_history, or $PIPECACHE_HISTFILE; empty: none) and
// Tab completion (github.com/peterh/liner); Ctrl-C cancels the running command, watch
// included, and returns to the prompt. Otherwise no prompt is printed, nothing is recorded,
// every line runs, and a failed line sets the exit code.
//
// Exit codes: 0 success (a missing key is not a failure: get and del print (nil)); 1 a command
// failed (an error from the server, nothing listening, a timeout, Ctrl-C); 2 a usage error
// (unknown flag or command, wrong arguments). A script exits 2 if any line was a usage
// error, else 1 if any failed. help needs no server; nothing listening is said at once.
//
// Files: main.go (run: flags to exit code), config.go (flags), ctl.go (running one command,
// the lazy connection), commands.go (the command table), help.go, output.go (text, -raw,
// -json), exec.go (the exec command) with procargs.go (the built-ins' arguments and results
// as text), slowlog.go (the slowlog command), split.go (quoting), shell.go (one-shot and
// script modes, Ctrl-C), terminal.go (the interactive shell: liner, history, completion),
// watch.go, version.go. Nobody imports it.
package main
