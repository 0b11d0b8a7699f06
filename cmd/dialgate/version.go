package main

import (
	"encoding/json"
	"fmt"
	"runtime"

	"github.com/spf13/cobra"
)

// versionInfo is what `dialgate --version --json` prints.
type versionInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	Date      string `json:"date"`
	GoVersion string `json:"go_version"`
}

func buildInfo() versionInfo {
	return versionInfo{Version: version, Commit: commit, Date: date, GoVersion: runtime.Version()}
}

// versionText is `dialgate --version`: "dialgate 0.2.0 (commit 1a2b3c4d5e6f,
// 2026-12-01, go1.26.8)", or with --json the versionInfo object.
func versionText(c *cobra.Command) (string, error) {
	v := buildInfo()
	if asJSON, _ := c.Flags().GetBool("json"); asJSON {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return "", err
		}
		return string(b) + "\n", nil
	}
	var extra string
	if v.Commit != "" {
		c := v.Commit
		if len(c) > 12 {
			c = c[:12]
		}
		extra += "commit " + c + ", "
	}
	if len(v.Date) >= 10 {
		extra += v.Date[:10] + ", "
	}
	return fmt.Sprintf("dialgate %s (%s%s)\n", v.Version, extra, v.GoVersion), nil
}

// setVersion wires --version and its --json into root.
func setVersion(root *cobra.Command) {
	cobra.AddTemplateFunc("dialgateVersion", func(c *cobra.Command) (string, error) { return versionText(c) })
	root.SetVersionTemplate(`{{dialgateVersion .}}`)
	root.Flags().Bool("json", false, "with --version: print version, commit, build date and Go version as JSON")
}
