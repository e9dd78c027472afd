# What a technician sees when the database goes away under a running chat:
# a dropped connection is reconnected without a word; a database that is
# gone gets a short apology, and nothing is half-done. The chat reads from
# a FIFO so the database can be changed between two messages.

=== (a machine)
stdin: /equip add Siemens G120C
run: rivet chat >/dev/null

=== a connection killed between two messages is reconnected, and the chat goes on
run: mkfifo in; rivet chat --echo <in >out 2>err & pid=$!; exec 3>in; echo '/stats' >&3; for i in $(seq 1 200); do grep -q '^Equipment: 1' out && break; sleep 0.05; done; psql -XAtq "$DATABASE_URL" -c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"; echo '/equip list' >&3; exec 3>&-; wait $pid; echo "exit $?"; cat out; grep -c 'ev=chat.db_reconnect' err
---
1
exit 0
> /stats
📊 demo
Equipment: 1
Work orders: 🟢 open 0 · 🟡 in progress 0 · ⏸ on hold 0 · ✅ completed 0 · 🔴 cancelled 0
Open by priority: 🔴 critical 0 · 🟠 high 0 · 🟡 medium 0 · 🔵 low 0
Open for more than 7 days: 0
🚨 No open alarms

> /equip list
🏭 Equipment (1)
EQ-YYYY-000001 · Siemens G120C

1

=== a database that is gone gets an apology for every message, and the chat still ends cleanly
run: rm -f in out; mkfifo in; rivet chat --echo <in >out 2>err & pid=$!; exec 3>in; echo '/stats' >&3; for i in $(seq 1 200); do grep -q '^Equipment: 1' out && break; sleep 0.05; done; db=$(psql -XAtq "$DATABASE_URL" -c 'SELECT current_database()'); psql -XAtq "${DATABASE_URL%/*}/postgres" -c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '$db'" -c "ALTER DATABASE \"$db\" RENAME TO \"${db}_away\""; echo '/wo new EQ-YYYY-000001 Leak' | sed "s/YYYY/$YEAR/" >&3; echo '/stats' >&3; exec 3>&-; wait $pid; echo "exit $?"; psql -XAtq "${DATABASE_URL%/*}/postgres" -c "ALTER DATABASE \"${db}_away\" RENAME TO \"$db\""; tail -n +9 out; psql -XAtq "$DATABASE_URL" -c 'SELECT count(*) FROM work_orders'
---
1
exit 0
> /wo new EQ-YYYY-000001 Leak
Sorry, Rivet could not reach its database just now. Nothing was changed; please try again in a minute.

> /stats
Sorry, Rivet could not reach its database just now. Nothing was changed; please try again in a minute.

0
