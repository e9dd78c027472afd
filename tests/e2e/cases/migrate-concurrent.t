# Two `rivet migrate` started at once on a fresh database: both succeed, and
# each migration is applied and recorded exactly once.

# The newest migration this rivet carries (migrations are numbered 1..N).
set: SCHEMA=$(rivet version | sed -n 's/^  schema version //p')

=== two rivet migrate at once both exit 0; one applies everything
run: rivet migrate >one.out 2>one.err & a=$!; rivet migrate >two.out 2>two.err & b=$!; wait $a; echo "exit $?"; wait $b; echo "exit $?"; cat one.out two.out | sort
---
exit 0
exit 0
schema at version ${SCHEMA} (0 applied now)
schema at version ${SCHEMA} (${SCHEMA} applied now)

=== neither logged an error
run: cat one.err two.err | grep -c 'lvl=error'
exit: 1
---
0

=== schema_migrations has exactly one row per migration
run: psql -XAtq -v ON_ERROR_STOP=1 "$DATABASE_URL" -c 'SELECT count(*), count(DISTINCT version), min(version), max(version) FROM schema_migrations'
---
${SCHEMA}|${SCHEMA}|1|${SCHEMA}

=== the schema is complete: pg_trgm and the tables are there
run: psql -XAtq -v ON_ERROR_STOP=1 "$DATABASE_URL" -c "SELECT extname FROM pg_extension WHERE extname = 'pg_trgm'" -c "SELECT to_regclass('equipment') IS NOT NULL AND to_regclass('work_orders') IS NOT NULL"
---
pg_trgm
t

=== a third run is a no-op
run: rivet migrate
---
schema at version ${SCHEMA} (0 applied now)

=== four more at once are no-ops too
run: for i in 1 2 3 4; do rivet migrate >$i.out 2>&1 & done; wait; cat 1.out 2.out 3.out 4.out
---
schema at version ${SCHEMA} (0 applied now)
schema at version ${SCHEMA} (0 applied now)
schema at version ${SCHEMA} (0 applied now)
schema at version ${SCHEMA} (0 applied now)

=== a migration waiting for another process's lock is not cut short by the statement timeout
run: psql -XAtq "$DATABASE_URL" -c "SELECT pg_advisory_lock(1380538964)" -c "SELECT pg_sleep(1.5)" >/dev/null & holder=$!; for i in $(seq 1 100); do [ "$(psql -XAtq "$DATABASE_URL" -c "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted")" = 1 ] && break; sleep 0.02; done; RIVET_STATEMENT_TIMEOUT_MS=200 rivet migrate; echo "exit $?"; wait $holder
---
schema at version ${SCHEMA} (0 applied now)
exit 0
