// Package dialplan writes the Asterisk side of dialgate's phone door: the
// dialplan include that sends a call to the FastAGI server, the file edit
// that installs it, and the manager.conf login dialgate's AMI client uses.
//
// The package owns text and files, nothing live: Generate renders the
// include from Options, Splice places a block between marker comments in
// a config file's text, Install (InstallFile) does that to a file on disk
// with a backup and an atomic replace, and ManagerStanza renders the AMI
// login. Reloading Asterisk afterwards is the caller's job, through AMI
// (Action: Reload, Module: pbx_config); no shell is ever run.
//
// # The generated dialplan
//
// A context [dialgate-authorize] answers, runs AGI(agi://…/authorize),
// logs the outcome and hangs up; an access extension (*47 by default) in
// from-internal-custom, which FreePBX's from-internal searches first,
// jumps there. The door itself sets DIALGATE_RESULT (granted, denied,
// locked, error) and hangs up, so the call normally ends in the h
// extension, which logs the result; the priorities after AGI() run only
// when the door could not be reached, and play an error to the caller.
// Every value written into the dialplan passes an allowlist first:
// extensions.conf has no quoting, and a newline or ';' in an option would
// be a new dialplan line or a comment.
//
// # Asterisk's behaviour this relies on
//
//   - Contexts of the same name merge, so [from-internal-custom] in
//     extensions_custom.conf adds to FreePBX's (empty) one.
//   - An application's whole argument is expanded before it runs: a
//     channel function for the wrong channel driver inside IF() or
//     ExecIf() is still evaluated, so driver-specific reads get
//     priorities of their own (Options.PassAddress).
//   - AMI runs an action when the login's write classes share one class
//     with the action's, and sends an event when the read classes hold
//     the event's. PJSIPShowContacts and PJSIPShowEndpoint are class
//     system only; PeerStatus and ContactStatus are system events.
//   - An ACL's IPv4 rules do not apply to IPv6 clients (the default is
//     allow), so the manager stanza denies ::/0 too.
//
// # Usage
//
//	block, err := dialplan.Generate(dialplan.Options{})
//	...
//	changed, backup, err := dialplan.Install(
//		"/etc/asterisk/extensions_custom.conf", block, ".bak", time.Now())
//	if err != nil {
//		return err // names the file; errors.Is(err, dialplan.ErrMarkers) for hand-damaged markers
//	}
//	if changed {
//		// reload the dialplan through AMI; backup holds the old file
//	}
package dialplan
