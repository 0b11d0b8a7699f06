package ami

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Ping checks that Asterisk answers ("Response: Success", "Ping: Pong").
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.Action(ctx, "Ping")
	return err
}

// Logoff ends the session politely and closes the Client. Asterisk
// answers "Response: Goodbye" and closes the connection; a connection
// that closes before the answer arrives counts as logged off too. Under
// Run, Logoff also ends Run: a client that logs off does not reconnect.
func (c *Client) Logoff(ctx context.Context) error {
	c.mu.Lock()
	c.closing = true // the close that follows is no reason to reconnect
	c.mu.Unlock()
	defer c.Close()
	_, err := c.Action(ctx, "Logoff")
	if errors.Is(err, ErrConnectionLost) {
		return nil
	}
	return err
}

// Command runs a CLI command, as "asterisk -rx" would, and returns its
// output lines. Both reply formats are understood: Asterisk 14 and later
// answer "Response: Success" with one "Output:" header per line (the
// format recorded from Asterisk 20), older versions "Response: Follows"
// with raw lines up to "--END COMMAND--".
//
// A command Asterisk does not know gives a *ActionError together with the
// output, which holds Asterisk's explanation ("No such command ...").
// Output lines keep their leading and trailing spaces.
func (c *Client) Command(ctx context.Context, cmd string) (output []string, err error) {
	if strings.TrimSpace(cmd) == "" {
		return nil, fmt.Errorf("ami: Command: %w: empty command", ErrInvalidHeader)
	}
	resp, err := c.Action(ctx, "Command", Header{Key: "Command", Value: cmd})
	var ae *ActionError
	if err != nil && !errors.As(err, &ae) {
		return nil, err
	}
	if resp.Body != nil {
		output = resp.Body
	} else {
		output = resp.Values("Output")
	}
	return output, err
}
