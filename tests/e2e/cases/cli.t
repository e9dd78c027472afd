# The command line: help, usage errors (exit 2), failures (exit 1) and
# settings from the environment or an env file.

# The newest migration this rivet carries.
set: SCHEMA=$(rivet version | sed -n 's/^  schema version //p')

=== rivet --help
run: rivet --help
---
Usage: rivet [--env-file FILE] COMMAND [OPTIONS]

Rivet, the maintenance chat bot: equipment, work orders and plant alarms
for technicians on Telegram, WhatsApp and the console.

Commands:
  chat      talk to Rivet in this terminal (the console channel)
  serve     run the server: chat channels and plant alarms
  migrate   apply database migrations
  factory   create, list and set up factories
  invite    create invite codes
  rule      add, list, switch and try alert rules
  device    list MQTT devices and link them to machines
  doctor    check the settings, database, APIs and broker before serving
  digest    print a factory's daily digest (rivet serve sends it)
  ocr       read nameplate photos from files
  version   print versions

Options:
  --env-file FILE  read KEY=VALUE settings from FILE (the environment wins)
  -h, --help       this help; 'rivet COMMAND --help' for a command

Settings come from the environment: DATABASE_URL, RIVET_LOG_LEVEL,
RIVET_STATEMENT_TIMEOUT_MS. See the README for all of them.

=== rivet chat --help
run: rivet chat --help
---
Usage: rivet chat [--factory NAME] [--user NAME] [--echo] [--buttons]

Talk to Rivet in this terminal: one message per line, replies printed below.
Reads standard input to its end, so a conversation can be piped in.

  --factory NAME  the factory whose admin you speak as (default: demo;
                  created when missing)
  --user NAME     speak as console user NAME instead: a member, or a stranger
                  who can join with '/start CODE'
  --echo          print each message before its replies (for transcripts)
  --buttons       print the buttons under each reply, with what they send:
                  [ Next ▶ | ~/equip list 2 ] (a leading ~ means the page is
                  replaced in place on Telegram)

'/photo PATH [CAPTION]' sends the image file at PATH as a photo, as a
technician would from a phone; CAPTION is kept as the machine's location.

=== rivet invite --help
run: rivet invite create --help
---
Usage: rivet invite create --factory NAME --role ROLE [--uses N] [--expires 7d]
                           [--quiet]

Prints an invite code. A new user sends '/start CODE' to Rivet to join the
factory with that role.

  --factory NAME  the factory (name or slug)
  --role ROLE     technician, supervisor or admin
  --uses N        how many people may use the code (default 1, at most 1000)
  --expires DUR   how long it is valid: 30m, 12h, 7d, 2w (default 7d)
  --quiet         print only the code

=== every command has --help
run: for c in chat serve migrate factory invite version; do rivet $c --help | head -n 1; done
---
Usage: rivet chat [--factory NAME] [--user NAME] [--echo] [--buttons]
Usage: rivet serve
Usage: rivet migrate
Usage: rivet factory create NAME
Usage: rivet invite create --factory NAME --role ROLE [--uses N] [--expires 7d]
Usage: rivet version

=== rivet without a command prints the usage on stderr and exits 2
run: rivet
exit: 2
stderr: Usage: rivet [--env-file FILE] COMMAND [OPTIONS]
---

=== an unknown command exits 2
run: rivet frobnicate
exit: 2
stderr: rivet: unknown command 'frobnicate'. Try 'rivet --help'.
---

=== rivet invite create without --factory exits 2 naming the option
run: rivet invite create --role technician
exit: 2
stderr: rivet invite: --factory is required
---

=== rivet invite create without --role exits 2 naming the option
run: rivet invite create --factory demo
exit: 2
stderr: rivet invite: --role is required
---

=== rivet invite create with a bad role, use count or expiry exits 2
run: rivet invite create --factory demo --role boss; echo "exit $?"; rivet invite create --factory demo --role admin --uses 0; echo "exit $?"; rivet invite create --factory demo --role admin --uses 1001; echo "exit $?"; rivet invite create --factory demo --role admin --expires 3x; echo "exit $?"; rivet invite create --factory demo --role admin extra; echo "exit $?"
stderr: rivet invite: --role must be technician, supervisor or admin
stderr: rivet invite: --uses must be a number from 1 to 1000
stderr: rivet invite: --expires must be a duration such as 30m, 12h, 7d or 2w
stderr: rivet invite: unexpected argument
---
exit 2
exit 2
exit 2
exit 2
exit 2

=== rivet invite create for an unknown factory exits 1
run: rivet invite create --factory nowhere --role admin
exit: 1
stderr: rivet: no factory 'nowhere'; create it with 'rivet factory create NAME'
---

=== rivet factory create
run: rivet factory create "Plant North"
---
created factory Plant North (slug plant-north)

=== rivet factory create of a duplicate (same slug) exits 1
run: rivet factory create "PLANT  north!"
exit: 1
stderr: rivet: a factory with slug 'plant-north' already exists
---

=== rivet factory create without a usable name exits 2
run: rivet factory create; echo "exit $?"; rivet factory create '!!!'; echo "exit $?"; rivet factory create a b; echo "exit $?"; rivet factory; echo "exit $?"
stderr: rivet factory: usage: rivet factory create NAME
stderr: rivet factory: NAME must be 1 to 200 characters of plain text with a letter or digit
stderr: rivet factory: missing subcommand (create or list)
---
exit 2
exit 2
exit 2
exit 2

=== rivet invite create accepts the factory's name or slug
run: rivet invite create --factory "Plant North" --role admin --quiet && rivet invite create --factory plant-north --role admin --quiet
---
XXXX-XXXX-XXXX
XXXX-XXXX-XXXX

=== rivet chat --factory speaks as that factory's admin, creating it when missing
run: rivet chat --factory "Plant South" --echo
---
> /start
👋 Welcome back, Admin. You are admin at Plant South.
Send /help to see what Rivet can do.

=== ...and finds it again by its slug
run: rivet chat --factory plant-south --echo
---
> /stats
📊 Plant South
Equipment: 0
Work orders: 🟢 open 0 · 🟡 in progress 0 · ⏸ on hold 0 · ✅ completed 0 · 🔴 cancelled 0
Open by priority: 🔴 critical 0 · 🟠 high 0 · 🟡 medium 0 · 🔵 low 0
Open for more than 7 days: 0
🚨 No open alarms

=== rivet chat with bad options exits 2
run: rivet chat --bogus </dev/null; echo "exit $?"; rivet chat --user '' </dev/null; echo "exit $?"; rivet chat extra </dev/null; echo "exit $?"; rivet chat --factory '!!!' </dev/null; echo "exit $?"
stderr: rivet chat: option '--bogus' is unknown
stderr: rivet chat: --user must be 1 to 100 bytes of text
stderr: rivet chat: unexpected argument
stderr: rivet chat: --factory must be 1 to 200 characters of plain text with a letter or digit
---
exit 2
exit 2
exit 2
exit 2

=== without DATABASE_URL, commands exit 2 with a line naming DATABASE_URL
run: env -u DATABASE_URL rivet migrate; echo "exit $?"; DATABASE_URL= rivet chat </dev/null; echo "exit $?"; env -u DATABASE_URL rivet factory list; echo "exit $?"
stderr: rivet: DATABASE_URL is not set
---
exit 2
exit 2
exit 2

=== a DATABASE_URL that is not a connection string exits 2 naming it
run: DATABASE_URL='postgresql://[broken' rivet migrate
exit: 2
stderr: rivet: DATABASE_URL is not a valid libpq connection string or URI
---

=== an unreachable database exits 1 naming DATABASE_URL
run: DATABASE_URL='postgresql://rivet@127.0.0.1:1/nothing?connect_timeout=5' rivet migrate
exit: 1
stderr: rivet: cannot connect to the database (DATABASE_URL)
---

=== an invalid RIVET_LOG_LEVEL exits 2 naming it
run: RIVET_LOG_LEVEL=loud rivet migrate; echo "exit $?"; RIVET_LOG_LEVEL=loud rivet chat </dev/null; echo "exit $?"
stderr: rivet: RIVET_LOG_LEVEL must be one of debug, info, warn, error, off
---
exit 2
exit 2

=== an invalid RIVET_STATEMENT_TIMEOUT_MS exits 2 naming it
run: RIVET_STATEMENT_TIMEOUT_MS=5 rivet migrate
exit: 2
stderr: rivet: RIVET_STATEMENT_TIMEOUT_MS must be a number of milliseconds, 100 to 600000
---

=== RIVET_LOG_LEVEL=off silences the log, and a valid level is accepted
run: RIVET_LOG_LEVEL=off rivet migrate 2>err && RIVET_LOG_LEVEL=DEBUG rivet migrate 2>/dev/null && wc -c <err
---
schema at version ${SCHEMA} (0 applied now)
schema at version ${SCHEMA} (0 applied now)
0

=== --env-file supplies settings
run: printf '# settings\nexport DATABASE_URL="%s"\n' "$DATABASE_URL" >rivet.env && env -u DATABASE_URL rivet --env-file rivet.env migrate
---
schema at version ${SCHEMA} (0 applied now)

=== the environment wins over --env-file
run: printf 'RIVET_LOG_LEVEL=loud\n' >loud.env && RIVET_LOG_LEVEL=warn rivet --env-file loud.env migrate
---
schema at version ${SCHEMA} (0 applied now)

=== a bad or missing --env-file exits 2 naming the file
run: printf 'RIVET_LOG_LEVEL=loud\n' >loud.env && printf 'garbage line\n' >bad.env && rivet --env-file loud.env migrate; echo "exit $?"; rivet --env-file bad.env migrate; echo "exit $?"; rivet --env-file missing.env migrate; echo "exit $?"
stderr: rivet: RIVET_LOG_LEVEL must be one of debug, info, warn, error, off
stderr: rivet: bad.env:1: expected KEY=VALUE
stderr: rivet: cannot read env file missing.env: No such file or directory
---
exit 2
exit 2
exit 2

=== rivet serve migrates, says it is ready and stops cleanly on SIGTERM
run: rivet serve 2>serve.log & pid=$!; for i in $(seq 1 200); do grep -q 'ev=serve.ready' serve.log && break; sleep 0.05; done; kill -TERM $pid; wait $pid; echo "exit $?"; grep -c 'ev=serve.stopping signal=SIGTERM' serve.log
---
exit 0
1

=== rivet version names rivet and every library it is built on
run: v=$(rivet version); for w in rivet libpq libcurl jansson libmosquitto libmicrohttpd tesseract leptonica pcre2 OpenSSL 'schema version'; do case $v in *"$w"*) echo "$w";; *) echo "MISSING $w";; esac; done
---
rivet
libpq
libcurl
jansson
libmosquitto
libmicrohttpd
tesseract
leptonica
pcre2
OpenSSL
schema version

=== rivet factory list shows each factory with its people and machines
run: rivet factory list
---
plant-north	Plant North	0 users	0 equipment
plant-south	Plant South	1 user	0 equipment

=== a factory name in another script gets a stable slug; control characters are refused
run: rivet factory create 'Завод'; rivet invite create --factory 'Завод' --role admin --quiet >/dev/null && echo found; rivet chat --factory $'Evil\e]0;x' </dev/null; echo "exit $?"
stderr: rivet chat: --factory must be 1 to 200 characters of plain text with a letter or digit
---
created factory Завод (slug f-14e0c280)
found
exit 2

=== an invite's validity is told in its largest whole unit
run: rivet invite create --factory plant-north --role admin --expires 90m | sed -n 2p; rivet invite create --factory plant-north --role admin --expires 2w --uses 3 | sed -n 2p
---
Invite for Plant North as admin, 1 use, valid for 90 minutes.
Invite for Plant North as admin, 3 uses, valid for 14 days.

=== rivet doctor: a bad setting fails, and nothing else is checked
run: RIVET_STATEMENT_TIMEOUT_MS=5 rivet doctor; echo "exit $?"
---
FAIL  settings    RIVET_STATEMENT_TIMEOUT_MS must be a number of milliseconds, 100 to 600000
skip  database    not checked: fix the settings first
skip  migrations  not checked: fix the settings first
skip  telegram    not checked: fix the settings first
skip  whatsapp    not checked: fix the settings first
skip  mqtt        not checked: fix the settings first
skip  llm         not checked: fix the settings first
skip  http        not checked: fix the settings first
exit 1
