package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// Shell completion of the names an administrator types: accounts,
// entries and providers, asked of the running daemon. Completion must
// never hang a shell or print an error into it: a daemon that is down or
// slow simply offers nothing.

const completeTimeout = 2 * time.Second

type completer func(ctx context.Context, g *globals) ([]string, error)

func completeAccounts(ctx context.Context, g *globals) ([]string, error) {
	c, err := g.client(false)
	if err != nil {
		return nil, err
	}
	as, err := c.Accounts(ctx)
	var out []string
	for _, a := range as {
		out = append(out, a.Name+"\t"+strings.TrimSpace(a.Perms.String()+" "+a.Comment))
	}
	return out, err
}

func completeEntries(ctx context.Context, g *globals) ([]string, error) {
	c, err := g.client(false)
	if err != nil {
		return nil, err
	}
	st, err := c.Status(ctx)
	var out []string
	for _, e := range st.Entries {
		out = append(out, fmt.Sprintf("%s\t%s %s of %s", e.ID, e.Kind, e.Value, e.Account))
	}
	return out, err
}

func completeProviders(ctx context.Context, g *globals) ([]string, error) {
	c, err := g.client(false)
	if err != nil {
		return nil, err
	}
	ps, err := c.Providers(ctx)
	var out []string
	for _, p := range ps {
		out = append(out, p.Name+"\t"+p.Title)
	}
	return out, err
}

// completeArg offers fn's names for the first argument only (all
// arguments when every is set).
func completeArg(g *globals, fn completer, every bool) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 && !every {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), completeTimeout)
		defer cancel()
		names, err := fn(ctx, g)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}

// addCompletions wires the name completions into the command tree, by
// command path, after it is built.
func addCompletions(root *cobra.Command, g *globals) {
	wire := map[string]cobra.CompletionFunc{
		"account del":       completeArg(g, completeAccounts, false),
		"account set":       completeArg(g, completeAccounts, false),
		"account passcode":  completeArg(g, completeAccounts, false),
		"allow ip":          completeArg(g, completeAccounts, false),
		"allow cidr":        completeArg(g, completeAccounts, false),
		"allow fqdn":        completeArg(g, completeAccounts, false),
		"lockouts clear":    completeArg(g, completeAccounts, false),
		"deny":              completeArg(g, completeEntries, false),
		"entry set":         completeArg(g, completeEntries, false),
		"providers enable":  completeArg(g, completeProviders, true),
		"providers disable": completeArg(g, completeProviders, true),
	}
	for path, fn := range wire {
		cmd, rest, err := root.Find(strings.Fields(path))
		if err != nil || len(rest) > 0 || cmd.CommandPath() != root.Name()+" "+path {
			panic("completion for a command that does not exist: " + path)
		}
		cmd.ValidArgsFunction = fn
	}
}
