package main

import (
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/api"
	"github.com/cloudftpd/cloudftpd/internal/config"
)

const apiUsage = `Usage:
  cloudftpd api token add NAME --scope read|admin
  cloudftpd api token list
  cloudftpd api token del NAME

Flags (before or after NAME):
  --config FILE        the server's config, to find api.tokens_file
                       (default ./cloudftpd.toml when it exists)
  --tokens-file FILE   the tokens file itself
  --scope read|admin   read: GET only (status, sessions, transfers, bans,
                       users); admin: also end sessions, ban, reload

"add" prints the new token once: only its SHA-256 is kept. A running
server sees added and deleted tokens at the next request, without a
reload. Use a token as: curl -H "Authorization: Bearer TOKEN" ...
`

// runAPI is "cloudftpd api".
func runAPI(args []string, stdout, stderr io.Writer) int {
	if len(args) < 2 || args[0] != "token" {
		fmt.Fprint(stderr, apiUsage)
		return 2
	}
	verb := args[1]
	var scopeFlag string
	cmd := entryCommand{name: "api token", prefix: "cloudftpd api:", usage: apiUsage,
		verbs:    map[string]int{"add": 1, "list": 0, "del": 1},
		fileFlag: "tokens-file", key: "api.tokens_file", fromConfig: (*config.Config).APITokensFile}
	pos, path, code := cmd.parse(verb, args[2:], stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&scopeFlag, "scope", "", "read or admin")
	})
	if code >= 0 {
		return code
	}
	fail := func(err error) int { return cmd.fail(stderr, err) }
	switch {
	case verb == "add" && len(pos) == 1:
		scope, err := api.ParseScope(scopeFlag)
		if err != nil {
			return fail(fmt.Errorf("--scope read|admin is required: %w", err))
		}
		f, err := api.LoadTokensOrEmpty(path)
		if err != nil {
			return fail(err)
		}
		secret, err := f.Add(pos[0], scope, time.Now())
		if err != nil {
			return fail(err)
		}
		if err := f.Save(path); err != nil {
			return fail(err)
		}
		fmt.Fprintln(stdout, secret)
		fmt.Fprintf(stderr, "token %q (%s) added to %s; it is shown only this once\n", pos[0], scope, path)
		return 0
	case verb == "list" && len(pos) == 0:
		f, err := api.LoadTokensOrEmpty(path)
		if err != nil {
			return fail(err)
		}
		var rows [][]string
		for _, t := range f.Tokens {
			rows = append(rows, []string{t.Name, string(t.Scope), t.Created.Format(time.RFC3339)})
		}
		printEntries(stdout, "tokens", path, []string{"NAME", "SCOPE", "CREATED"}, rows)
		return 0
	case verb == "del" && len(pos) == 1:
		if err := deleteEntry(stdout, "token", api.LoadTokens, path, pos[0]); err != nil {
			return fail(err)
		}
		return 0
	}
	fmt.Fprint(stderr, apiUsage)
	return 2
}
