package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/dialgate/dialgate/auth"
	"github.com/dialgate/dialgate/firewall"
	"github.com/dialgate/dialgate/store"
)

const settingSIPDomains = "sip-domains"

func sipDomains(tx store.Tx) ([]string, error) {
	raw, err := tx.Setting(settingSIPDomains)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ds []string
	if err := json.Unmarshal(raw, &ds); err != nil {
		return nil, fmt.Errorf("setting %s: %w", settingSIPDomains, err)
	}
	return ds, nil
}

// SIPDomains lists the secret SIP domains.
func (d *Daemon) SIPDomains() (ds []string, err error) {
	err = d.db.View(func(tx store.Tx) error {
		ds, err = sipDomains(tx)
		return err
	})
	return ds, err
}

// AddSIPDomain installs the secret-domain rules for one more domain: a
// REGISTER for it gets in from anywhere, so anyone who learns it can
// reach SIP. The domain is validated as a host name (no quotes, no
// spaces) before it goes near a rule.
func (d *Daemon) AddSIPDomain(ctx context.Context, domain string) ([]string, error) {
	return d.editSIPDomains(ctx, "sip-domain.add", domain, func(ds []string, v string) ([]string, error) {
		if slices.Contains(ds, v) {
			return nil, fmt.Errorf("sip domain %q: %w", v, store.ErrExists)
		}
		return append(ds, v), nil
	})
}

// DeleteSIPDomain removes one.
func (d *Daemon) DeleteSIPDomain(ctx context.Context, domain string) ([]string, error) {
	return d.editSIPDomains(ctx, "sip-domain.del", domain, func(ds []string, v string) ([]string, error) {
		i := slices.Index(ds, v)
		if i < 0 {
			return nil, fmt.Errorf("sip domain %q: %w", v, store.ErrNotFound)
		}
		return slices.Delete(ds, i, i+1), nil
	})
}

func (d *Daemon) editSIPDomains(ctx context.Context, action, domain string, edit func([]string, string) ([]string, error)) ([]string, error) {
	rec := store.AuditRecord{Action: action, Actor: "cli", Subject: domain}
	var out []string
	err := func() error {
		v, err := auth.CanonicalHost(domain)
		if err != nil {
			return err
		}
		if len(v) > firewall.MaxSIPDomainLen {
			return fmt.Errorf("%w: sip domain %q: longer than %d characters", auth.ErrInvalid, v, firewall.MaxSIPDomainLen)
		}
		rec.Subject = v
		return d.changeRules(ctx, Guard{}, func(tx store.Tx) error {
			ds, err := sipDomains(tx)
			if err != nil {
				return err
			}
			if out, err = edit(ds, v); err != nil {
				return err
			}
			raw, err := json.Marshal(out)
			if err != nil {
				return err
			}
			if err := tx.PutSetting(settingSIPDomains, raw); err != nil {
				return err
			}
			rec.Result = "ok"
			return tx.Audit(rec)
		})
	}()
	if err != nil {
		d.refused(rec, err)
		return nil, err
	}
	d.log.Info("sip domains changed", "action", action, "domain", rec.Subject, "domains", out)
	return out, nil
}
