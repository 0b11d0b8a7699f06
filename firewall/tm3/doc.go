// Package tm3 imports a Travelin' Man 3 (TM3) whitelist into dialgate's
// model of accounts, entries and permission codes.
//
// TM3 is the set of shell scripts that Incredible PBX / PBX in a Flash
// installs in /root to whitelist addresses in the iptables firewall. This
// package reads what those scripts leave on disk; it never runs them and
// never touches the kernel. Everything it returns is a proposal for the
// administrator to review: Skipped says, line by line, what was not
// imported and why.
//
// # What TM3 writes (the record this parser is built on)
//
// The scripts themselves, as published in the Incredible PBX for CentOS 7
// tree (GPL2, "add-ip 1.4U", "add-fqdn 1.3U", "del-acct 1.4U", 2012-2014),
// https://github.com/EspaceNetworks/IncrediblePBXCentOS7 files add-ip,
// add-fqdn, del-acct, iptables-restart and IncrediblePBX13-12R.sh:
//
//   - "add-ip NAME ADDRESS" and "add-fqdn NAME FQDN" create the account
//     file /root/NAME.iptables, refuse a NAME whose file already exists, and
//     ask for service numbers 0-9 separated by commas: 0 all services, 1 SIP
//     UDP, 2 SIP TCP, 3 IAX, 4 Web, 5 Webmin, 6 FTP, 7 TFTP, 8 SSH, 9 FOP
//     (dialgate's permission codes are this numbering).
//   - For each chosen number one rule line is written, with the address (an
//     IP, or for add-fqdn the host name itself) after -s:
//     0 "-A INPUT -s ADDR -j ACCEPT" (no protocol, no port);
//     1 and 2 "-p udp -m udp" / "-p tcp -m tcp" with "--dport 5060:5069";
//     3 udp 4569; 4 "-p tcp -m multiport --dports 80,9080"; 5 tcp 9001;
//     6 tcp 21; 7 udp 69; 8 "-m multiport --dports 22,9022"; 9 tcp 4445.
//     The options come in that order (-p, -m, -s, --dport), which is not
//     the order iptables-save prints: the file is written by the scripts,
//     not saved from the kernel.
//   - The lines are wrapped in the markers "# // New entry for
//     NAME.iptables" and "# // End entry for NAME.iptables" and inserted
//     with sed right after the line "# End of Trusted Provider Section" of
//     /etc/sysconfig/iptables (on Debian/Ubuntu builds /etc/iptables/rules.v4;
//     the CentOS installer patches the path). Newer accounts therefore come
//     first. del-acct NAME.iptables deletes the lines between the markers
//     and the account file.
//   - The account file holds one line of two space-separated fields: the
//     account's address and the address it last resolved to. add-ip writes
//     the placeholder "1.1.1.1 1.1.1.1" first, add-fqdn "no.fqdn 1.1.1.1";
//     add-fqdn then writes "FQDN RESOLVED-IP". add-ip 1.4U means to write
//     "IP IP" but reuses the variable that just captured the output of the
//     iptables restart, so on success the file is left holding a single
//     space: the address then lives only in the iptables block.
//   - add-ip's error path deletes the block through an undefined variable,
//     so a block can outlive its account file; both are read independently
//     here and joined by Merge.
//   - add-fqdn warns never to run "service iptables save", which would
//     replace every host name with the addresses it resolved to. Host
//     names in -s are therefore normal in a TM3 file.
//   - iptables-restart, when iptables-restore fails on a name that does not
//     resolve, prefixes the offending line with "#***", retries, and at the
//     end strips every "#***" again. A "#***-A INPUT ..." line means that run
//     was interrupted.
//   - The installer builds /etc/sysconfig/iptables from a template
//     (rules.v4.ubuntu14) by substituting the server, SSH-client and public
//     addresses; a placeholder it could not fill is deleted or turned into
//     "#-A INPUT -s  -j ...". Webmin is moved to port 9001 (add-ip's code 5).
//
// The Nerd Vittles articles describe the design around the scripts:
// trusted VoIP providers whitelisted by FQDN for SIP and IAX (e.g.
// outbound1.vitelity.net), all non-routable ranges plus the server's and
// the installing PC's addresses whitelisted at install time, and add-fqdn
// for dynamic-DNS users: http://nerdvittles.com/?p=21349 ("Travelin' Man 3
// firewall implementation for 2017") and
// https://nerdvittles.com/whitelisting-users-with-travelin-man-3-and-iptables-firewall/.
// The record found holds no copy of the ipchecker cron script; it is taken
// to be the FQDN watcher that compares the two fields of the account files
// and restarts iptables when a name moves, which matches the file format
// above. Nothing here depends on it.
//
// # How it maps
//
// ParseIPTables reads an iptables-save / iptables-restore file. Only rules
// of the filter table's INPUT chain that ACCEPT with a -s source become
// entries (TM3 uses no chains of its own); every other rule line is
// returned in Skipped with a reason. Loopback, LAN ranges (10/8,
// 172.16/12, 192.168/16, fc00::/7), -i lo, ESTABLISHED/RELATED, ICMP, the
// open RTP range and DROP/REJECT rules are skipped with a reason starting
// ReasonSelfHandled. Sources that would open the server to everyone
// (0.0.0.0/0, ::/0, anything wider than /8 or /16) and multicast,
// broadcast, unspecified and link-local addresses are skipped as well.
//
// iptables stops at the first matching rule, and dialgate's sets cannot
// express exceptions, so an ACCEPT is not imported (and says why) when an
// earlier DROP/REJECT of an overlapping source, or of some of its ports for
// everyone, would have stopped part of its traffic, or when an earlier
// rule dropped everything. Drops that look at state, content, rates or
// sets (the friendly-scanner kind) drop only some packets and are not
// taken as exceptions.
//
// A rule's protocol and destination ports map to the permission codes
// whose ports they touch: tcp/80 alone becomes code 4 (80, 443, 9080),
// udp/5060 becomes code 1 (5060-5069). A code is dialgate's unit of
// access, so the import can widen a rule to the whole service; it never
// opens a service the rule did not touch. No protocol and no port is code
// 0. A protocol without a port match ("-p udp -s X -j ACCEPT") is narrowed
// to that protocol's codes rather than widened to code 0, and the ports
// left out are reported; so are ports no code covers (tcp/5038, the AMI).
//
// Rules between a block's markers belong to account NAME (normalized to
// dialgate's account-name rule); every other accepted rule goes to the
// account "tm3-import", with the nearest "#" comment line (or "TM3
// trusted-provider section" above that marker) as entry comment. An
// account's Perms is the union of its entries' codes; entries keep their
// own codes so that editing the account later widens nothing.
//
// ParseAccountFile reads /root/NAME.iptables: its first field becomes an
// entry without permissions of its own (the rules in the iptables file
// carry them), placeholders are skipped, and for a name the second field
// is kept in the entry comment. Merge joins results and folds entries of
// the same account, kind and value into one, with the union of their
// codes.
//
// All input is treated as hostile: lines are limited to 64 KiB, addresses
// go through net/netip, host names must follow RFC 1123, comments and
// echoed text are stripped of control and format characters and capped,
// and account names are normalized with the original kept in the
// account's comment.
package tm3
