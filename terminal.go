package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/agent-secrets/secrets/vault"

	"golang.org/x/sys/unix"
)

// maxValue bounds what is read as a value: the store takes at most 1 MiB, so reading a
// little more is enough to refuse a larger one.
const maxValue = 1<<20 + 2

// isTerminal reports whether v is an *os.File open on a terminal.
func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), ioctlGetTermios)
	return err == nil
}

// readValue reads a secret value: from the terminal with echo off and a prompt on
// stderr, or else from stdin, with exactly one trailing newline dropped. It reads at most
// a little over the largest value the store takes; the vault refuses an empty or
// oversized one.
func (a *app) readValue(name string) ([]byte, error) {
	var v []byte
	var err error
	if isTerminal(a.stdin) {
		v, err = readHidden(a.stdin.(*os.File), a.stderr, fmt.Sprintf("Value for %s (input hidden): ", name))
	} else {
		v, err = io.ReadAll(io.LimitReader(a.stdin, maxValue))
		v = bytes.TrimSuffix(v, []byte("\n"))
	}
	if err != nil {
		clear(v)
		return nil, fmt.Errorf("read value: %w", err)
	}
	return v, nil
}

// readHidden prompts on w and reads one line from the terminal f with echo turned off.
// The terminal is restored on return and on SIGINT, SIGTERM or SIGHUP while waiting.
func readHidden(f *os.File, w io.Writer, prompt string) ([]byte, error) {
	fd := int(f.Fd())
	old, err := unix.IoctlGetTermios(fd, ioctlGetTermios)
	if err != nil {
		return nil, err
	}
	quiet := *old
	quiet.Lflag &^= unix.ECHO
	quiet.Lflag |= unix.ICANON | unix.ISIG
	// Echo goes off before the prompt shows: input that arrives the moment the prompt
	// appears (a paste) must not be echoed. TestAddPromptsWithoutEcho caught this order.
	if err := unix.IoctlSetTermios(fd, ioctlSetTermios, &quiet); err != nil {
		return nil, err
	}
	fmt.Fprint(w, prompt)
	restore := func() { unix.IoctlSetTermios(fd, ioctlSetTermios, old) }
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-sig:
			restore()
			fmt.Fprintln(w)
			os.Exit(128 + int(s.(syscall.Signal)))
		case <-done:
		}
	}()
	defer func() {
		close(done)
		signal.Stop(sig)
		restore()
		fmt.Fprintln(w)
	}()
	r := bufio.NewReaderSize(f, 4096)
	line, err := r.ReadSlice('\n')
	if err != nil && err != io.EOF {
		return nil, err
	}
	v := bytes.Clone(bytes.TrimSuffix(line, []byte("\n")))
	clear(line)
	// A paste of several lines arrives as several lines: reading the first would leave the
	// rest to the shell, which runs them as commands (and keeps them in its history). The
	// rest of a paste follows within milliseconds; if any is there, all of it is thrown
	// away and nothing is stored.
	time.Sleep(pasteSettle)
	if r.Buffered() > 0 || pendingInput(fd) > 0 {
		flushInput(fd)
		clear(v)
		return nil, vault.Usagef("more than one line was pasted at the prompt: nothing was stored, and the rest was discarded so that no shell runs it; give a multi-line value on stdin: secrets add NAME < FILE")
	}
	return v, nil
}

// pasteSettle is how long the prompt waits after a line for the rest of a paste.
const pasteSettle = 50 * time.Millisecond

// askTTY shows prompt on the controlling terminal and reads one line from it; never
// stdin, which an agent may be writing.
func askTTY(prompt string) (string, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return "", err
	}
	defer tty.Close()
	fmt.Fprint(tty, prompt)
	line, _ := bufio.NewReader(tty).ReadString('\n')
	return line, nil
}
