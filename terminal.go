package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/agent-secrets/secrets/store"
	"golang.org/x/sys/unix"
)

// isTerminal reports whether v is an *os.File open on a terminal.
func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// readValue reads a secret value: from the terminal with echo off and a prompt on
// stderr, or else from stdin, at most store.MaxValueSize bytes, with exactly one trailing
// newline dropped. An empty or oversized value fails with store.ErrInvalidValue.
func (a *app) readValue(name string) ([]byte, error) {
	var v []byte
	var err error
	if isTerminal(a.stdin) {
		v, err = readHidden(a.stdin.(*os.File), a.stderr, fmt.Sprintf("Value for %s (input hidden): ", name))
	} else {
		v, err = io.ReadAll(io.LimitReader(a.stdin, store.MaxValueSize+2))
		v = bytes.TrimSuffix(v, []byte("\n"))
	}
	if err != nil {
		return nil, fmt.Errorf("read value: %w", err)
	}
	if err := store.CheckValue(v); err != nil {
		clear(v)
		return nil, err
	}
	return v, nil
}

// readHidden prompts on w and reads one line from the terminal f with echo turned off.
// The terminal is restored on return and on SIGINT, SIGTERM or SIGHUP while waiting.
func readHidden(f *os.File, w io.Writer, prompt string) ([]byte, error) {
	fd := int(f.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, err
	}
	quiet := *old
	quiet.Lflag &^= unix.ECHO
	quiet.Lflag |= unix.ICANON | unix.ISIG
	// Echo goes off before the prompt shows: input that arrives the moment the prompt
	// appears (a paste) must not be echoed. TestAddPromptsWithoutEcho caught this order.
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &quiet); err != nil {
		return nil, err
	}
	fmt.Fprint(w, prompt)
	restore := func() { unix.IoctlSetTermios(fd, unix.TCSETS, old) }
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
	line, err := bufio.NewReaderSize(f, 4096).ReadSlice('\n')
	if err != nil && err != io.EOF {
		return nil, err
	}
	v := bytes.Clone(bytes.TrimSuffix(line, []byte("\n")))
	clear(line)
	return v, nil
}
