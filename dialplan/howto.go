package dialplan

// FreePBXHowTo returns short instructions for a FreePBX admin, ready for
// the README or `dialgate dialplan --help`. Markdown, 72 columns.
func FreePBXHowTo() string {
	return `### FreePBX

FreePBX owns extensions.conf and rewrites it on every "Apply Config";
extensions_custom.conf is yours, and FreePBX includes it. dialgate puts
its block there, between "; BEGIN dialgate" and "; END dialgate":

    dialgate dialplan install

edits /etc/asterisk/extensions_custom.conf and reloads the dialplan
through AMI.

By hand: paste the output of "dialgate dialplan print" into
extensions_custom.conf, then run: asterisk -rx "dialplan reload".

The block defines [dialgate-authorize] and the access extension (*47 by
default) in [from-internal-custom], which from-internal searches first,
so every internal phone can dial it at once. Check that no feature code
uses the same number (Admin > Feature Codes).

To reach the door another way (from an inbound route or an IVR, or with
a feature code you manage in the GUI), add a Custom Destination
(Admin > Custom Destinations) with target "dialgate-authorize,s,1" and
point a Misc Application (Applications > Misc Applications) or an
inbound route at it. The access extension in the block is then not
needed: install the block without it.

AMI: FreePBX also rewrites manager.conf; put dialgate's login in
/etc/asterisk/manager_custom.conf, mode 0640, group asterisk, and run
asterisk -rx "manager reload".
`
}

// AsteriskHowTo returns short instructions for a plain Asterisk admin.
func AsteriskHowTo() string {
	return `### Plain Asterisk

Put the output of "dialgate dialplan print" in extensions.conf, or in a
file of its own that extensions.conf includes:

    ; extensions.conf
    #include dialgate.conf

"dialgate dialplan install" keeps the block up to date in place,
between "; BEGIN dialgate" and "; END dialgate". Anything after the END
marker needs its own [context] line: the block ends inside the access
extension's context.

Then: asterisk -rx "dialplan reload" (dialgate does this through AMI,
Action: Reload with Module: pbx_config, when it installs).

The access extension (*47 by default) must go in a context your phones'
endpoints use (context= in pjsip.conf or sip.conf), and it must not be
an Asterisk pattern: it is one number.

AMI: add dialgate's login to manager.conf (or manager.d/dialgate.conf if
your manager.conf includes that directory), keep [general]
bindaddr = 127.0.0.1, and run asterisk -rx "manager reload".
`
}
