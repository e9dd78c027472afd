/* Inbox, outbox, chats and poll offsets; notifications and advisory locks. */
#include "queue.h"

#include "db_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"

int db_poll_offset(struct db *db, const char *channel, long long *ret)
{
    static const struct db_stmt st = {
        "poll_offset", "SELECT poll_offset FROM channel_state WHERE channel = $1", 1};
    PGresult *res;
    int r;

    r = db_query(db, &st, (const char *[]){channel}, &res);
    if (r < 0)
        return r;
    *ret = PQntuples(res) > 0 ? db_i64(res, 0, 0) : 0;
    PQclear(res);
    return 0;
}

int db_inbox_store(struct db *db, const char *channel, int n, const char *const *external_ids,
                   const char *const *chat_ids, const char *const *payloads, long long new_offset)
{
    static const struct db_stmt ins = {
        "inbox_store",
        "INSERT INTO inbox (channel, external_id, chat_id, payload) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (channel, external_id) DO NOTHING",
        4};
    static const struct db_stmt off = {
        "poll_offset_set",
        "INSERT INTO channel_state (channel, poll_offset) VALUES ($1, $2) "
        "ON CONFLICT (channel) DO UPDATE SET poll_offset = greatest(channel_state.poll_offset, "
        "  excluded.poll_offset), updated_at = now()",
        2};
    struct db_num o;
    int r;

    r = db_begin(db);
    if (r < 0)
        return r;
    for (int i = 0; i < n; i++) {
        r = db_query(db, &ins, (const char *[]){channel, external_ids[i], chat_ids[i], payloads[i]},
                     NULL);
        if (r < 0)
            goto fail;
    }
    r = db_query(db, &off, (const char *[]){channel, db_num(&o, new_offset)}, NULL);
    if (r < 0)
        goto fail;
    if (n > 0) {
        r = db_exec(db, "NOTIFY " QUEUE_INBOX_EVENT);
        if (r < 0)
            goto fail;
    }
    return db_commit(db);
fail:
    db_rollback(db);
    return r;
}

int db_inbox_add(struct db *db, const char *channel, const char *external_id, const char *chat_id,
                 const char *payload, bool *dup)
{
    static const struct db_stmt st = {
        "inbox_add",
        "INSERT INTO inbox (channel, external_id, chat_id, payload) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (channel, external_id) DO NOTHING RETURNING id",
        4};
    PGresult *res;
    int r = db_query(db, &st, (const char *[]){channel, external_id, chat_id, payload}, &res);

    if (r < 0)
        return r;
    *dup = PQntuples(res) == 0;
    PQclear(res);
    return 0;
}

int db_inbox_notify(struct db *db)
{
    return db_exec(db, "NOTIFY " QUEUE_INBOX_EVENT);
}

int db_inbox_claim(struct db *db, struct arena *a, const char *channel, struct inbox_item *ret)
{
    return db_inbox_claim_skip(db, a, channel, NULL, 0, ret);
}

int db_inbox_claim_skip(struct db *db, struct arena *a, const char *channel, const int64_t *skip,
                        int n_skip, struct inbox_item *ret)
{
    /* The inner query names the oldest unhandled update of every chat; the
     * outer one locks the first that is due, not skipped and not taken by
     * another worker. handled_at IS NULL is checked again on the locked
     * row, in case it was handled between the two. */
    static const struct db_stmt st = {
        "inbox_claim",
        "SELECT i.id, i.chat_id, i.payload, i.attempts FROM inbox i JOIN ("
        "  SELECT DISTINCT ON (chat_id) id FROM inbox "
        "  WHERE channel = $1 AND handled_at IS NULL ORDER BY chat_id, id) h ON h.id = i.id "
        "WHERE i.handled_at IS NULL AND i.not_before <= now() AND i.id <> ALL($2::bigint[]) "
        "ORDER BY i.id LIMIT 1 FOR UPDATE OF i SKIP LOCKED",
        2};
    const char *ids = "{}";
    PGresult *res;
    int r;

    if (n_skip < 0 || n_skip > QUEUE_MAX_SKIP)
        return -EINVAL;
    if (n_skip > 0) {
        /* "{1,2,3}": at most 20 characters and a comma per id. */
        size_t cap = (size_t)n_skip * 21 + 3, len = 0;
        char *p = arena_alloc(a, cap);

        if (!p)
            return -ENOMEM;
        p[len++] = '{';
        for (int k = 0; k < n_skip; k++)
            len += (size_t)snprintf(p + len, cap - len, "%s%lld", k ? "," : "", (long long)skip[k]);
        p[len++] = '}';
        p[len] = '\0';
        ids = p;
    }
    r = db_query(db, &st, (const char *[]){channel, ids}, &res);
    if (r < 0)
        return r;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return -ENOENT;
    }
    ret->id = db_i64(res, 0, 0);
    ret->chat_id = db_str(a, res, 0, 1);
    ret->payload = db_str(a, res, 0, 2);
    ret->attempts = db_int(res, 0, 3);
    PQclear(res);
    return ret->chat_id && ret->payload ? 0 : -ENOMEM;
}

int db_inbox_done(struct db *db, int64_t id, const char *outcome)
{
    static const struct db_stmt st = {
        "inbox_done", "UPDATE inbox SET handled_at = now(), outcome = $2 WHERE id = $1", 2};
    struct db_num i;

    return db_query(db, &st, (const char *[]){db_num(&i, id), outcome}, NULL);
}

int db_inbox_retry_later(struct db *db, int64_t id, int delay_ms)
{
    static const struct db_stmt st = {
        "inbox_retry",
        "UPDATE inbox SET attempts = attempts + 1, "
        "  not_before = now() + make_interval(secs => $2::double precision / 1000) "
        "WHERE id = $1 AND handled_at IS NULL",
        2};
    struct db_num i, d;

    return db_query(db, &st, (const char *[]){db_num(&i, id), db_num(&d, delay_ms)}, NULL);
}

int db_chat_seen(struct db *db, const char *channel, const char *chat_id, const char *kind)
{
    static const struct db_stmt st = {
        "chat_seen",
        /* The row is locked only when it changes: a worker holding it for
         * its whole transaction would make senders skip the chat. */
        "WITH ins AS (INSERT INTO chats (channel, chat_id, kind) VALUES ($1, $2, $3) "
        "  ON CONFLICT (channel, chat_id) DO NOTHING RETURNING 1) "
        "UPDATE chats SET kind = $3, active = true, updated_at = now() "
        "WHERE channel = $1 AND chat_id = $2 AND (kind <> $3 OR NOT active) "
        "  AND NOT EXISTS (SELECT 1 FROM ins)",
        3};

    return db_query(db, &st, (const char *[]){channel, chat_id, kind}, NULL);
}

int db_chat_inbound(struct db *db, const char *channel, const char *chat_id, int64_t at)
{
    static const struct db_stmt st = {
        "chat_inbound",
        "INSERT INTO chat_windows (channel, chat_id, last_inbound_at) "
        "VALUES ($1, $2, least(now(), to_timestamp($3::double precision))) "
        "ON CONFLICT (channel, chat_id) DO UPDATE SET last_inbound_at = "
        "  greatest(chat_windows.last_inbound_at, excluded.last_inbound_at)",
        3};
    struct db_num t;

    return db_query(db, &st, (const char *[]){channel, chat_id, db_num(&t, at)}, NULL);
}

int db_chat_wait_sender(struct db *db, const char *channel, const char *chat_id)
{
    /* KEY SHARE conflicts only with the sender's FOR UPDATE: it neither
     * waits for nor blocks the webhooks' own updates of the row. */
    static const struct db_stmt st = {
        "chat_wait_sender", "SELECT 1 FROM chats WHERE channel = $1 AND chat_id = $2 FOR KEY SHARE",
        2};

    return db_query(db, &st, (const char *[]){channel, chat_id}, NULL);
}

int db_outbox_status(struct db *db, struct arena *a, const char *channel, const char *remote_id,
                     const char *status, const char *error, struct outbox_item *row)
{
    /* Ranks: sent < delivered < read; failed replaces sent only. */
#define RANK(x)                                                                                    \
    "CASE " x " WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2 WHEN 'read' THEN 3 "                    \
    "WHEN 'failed' THEN 2 ELSE 0 END"
    static const struct db_stmt st = {
        "outbox_status",
        "UPDATE outbox SET remote_status = $3, remote_status_at = now(), "
        "  remote_error = left($4, 300) "
        "WHERE channel = $1 AND remote_id = $2 AND " RANK("$3") " > " RANK(
            "coalesce(remote_status, '')") " RETURNING id, chat_id, payload",
        4};
    static const struct db_stmt known = {
        "outbox_remote_known", "SELECT 1 FROM outbox WHERE channel = $1 AND remote_id = $2", 2};
#undef RANK
    PGresult *res;
    int r;

    /* Twice at most: the sender may commit the message's id between the
     * UPDATE (whose snapshot did not see it) and the check, and then the
     * UPDATE, run again, sees it. Only a row that is there and still not
     * updated has the status already. */
    for (int round = 0;; round++) {
        r = db_query(db, &st, (const char *[]){channel, remote_id, status, error}, &res);
        if (r < 0)
            return r;
        if (PQntuples(res) > 0)
            break;
        PQclear(res);
        r = db_query(db, &known, (const char *[]){channel, remote_id}, &res);
        if (r < 0)
            return r;
        r = PQntuples(res) > 0 ? -EALREADY : -ENOENT;
        PQclear(res);
        if (r == -ENOENT || round == 1)
            return r;
    }
    *row = (struct outbox_item){
        .id = db_i64(res, 0, 0), .chat_id = db_str(a, res, 0, 1), .payload = db_str(a, res, 0, 2)};
    PQclear(res);
    return row->chat_id && row->payload ? 0 : -ENOMEM;
}

int db_chat_set_active(struct db *db, const char *channel, const char *chat_id, bool active)
{
    static const struct db_stmt st = {
        "chat_active",
        "INSERT INTO chats (channel, chat_id, active) VALUES ($1, $2, $3) "
        "ON CONFLICT (channel, chat_id) DO UPDATE SET active = excluded.active, updated_at = now()",
        3};

    return db_query(db, &st, (const char *[]){channel, chat_id, active ? "true" : "false"}, NULL);
}

int db_chat_blocked(struct db *db, const char *channel, const char *chat_id, const char *error)
{
    static const struct db_stmt st = {
        "outbox_fail_chat",
        "UPDATE outbox SET failed_at = now(), last_error = left($3, 500) "
        "WHERE channel = $1 AND chat_id = $2 AND sent_at IS NULL AND failed_at IS NULL",
        3};
    int r = db_chat_set_active(db, channel, chat_id, false);

    if (r < 0)
        return r;
    return db_query(db, &st, (const char *[]){channel, chat_id, error}, NULL);
}

int db_outbox_add(struct db *db, const char *channel, const char *chat_id, const char *method,
                  const char *payload, int64_t inbox_id)
{
    return db_outbox_add_id(db, channel, chat_id, method, payload, inbox_id, NULL, NULL);
}

int db_outbox_add_id(struct db *db, const char *channel, const char *chat_id, const char *method,
                     const char *payload, int64_t inbox_id, const char *context, int64_t *id)
{
    static const struct db_stmt st = {
        "outbox_add",
        "WITH c AS (INSERT INTO chats (channel, chat_id) VALUES ($1, $2) "
        "  ON CONFLICT (channel, chat_id) DO NOTHING) "
        "INSERT INTO outbox (channel, chat_id, method, payload, inbox_id, context) "
        "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        6};
    struct db_num i;
    PGresult *res;
    int r;

    r = db_query(db, &st,
                 (const char *[]){channel, chat_id, method, payload,
                                  inbox_id ? db_num(&i, inbox_id) : NULL, context},
                 &res);
    if (r < 0)
        return r;
    if (id)
        *id = db_i64(res, 0, 0);
    PQclear(res);
    return db_exec(db, "NOTIFY " QUEUE_OUTBOX_EVENT);
}

static bool is_true(const PGresult *res, int row, int col)
{
    return PQgetvalue(res, row, col)[0] == 't';
}

int db_outbox_remote_id(struct db *db, struct arena *a, int64_t id, const char **remote)
{
    static const struct db_stmt st = {
        "outbox_remote_id",
        "SELECT remote_id, sent_at IS NOT NULL, failed_at IS NOT NULL FROM outbox WHERE id = $1",
        1};
    struct db_num n;
    PGresult *res;
    int r;

    r = db_query(db, &st, (const char *[]){db_num(&n, id)}, &res);
    if (r < 0)
        return r;
    if (PQntuples(res) == 0 || is_true(res, 0, 2) || (is_true(res, 0, 1) && PQgetisnull(res, 0, 0)))
        r = -ENOENT;
    else if (!is_true(res, 0, 1))
        r = -EAGAIN;
    else if (!(*remote = db_str(a, res, 0, 0)))
        r = -ENOMEM;
    PQclear(res);
    return r;
}

int db_outbox_claim(struct db *db, struct arena *a, const char *channel, struct outbox_item *ret)
{
    /* As for the inbox: only the oldest pending message of a chat, so a
     * chat's messages go out in order, and the chat row is locked with it,
     * so two senders never both think the chat has budget. */
    static const struct db_stmt st = {
        "outbox_claim",
        "SELECT o.id, o.chat_id, o.method, o.payload, c.kind, o.attempts, "
        "  coalesce(extract(epoch FROM now() - w.last_inbound_at), -1) "
        "FROM outbox o JOIN ("
        "  SELECT DISTINCT ON (chat_id) id FROM outbox WHERE channel = $1 "
        "  AND sent_at IS NULL AND failed_at IS NULL ORDER BY chat_id, id) h ON h.id = o.id "
        "JOIN chats c ON c.channel = o.channel AND c.chat_id = o.chat_id "
        "LEFT JOIN chat_windows w ON w.channel = o.channel AND w.chat_id = o.chat_id "
        "WHERE o.sent_at IS NULL AND o.failed_at IS NULL AND o.due_at <= now() "
        "  AND c.next_send_at <= now() AND c.active "
        "ORDER BY o.id LIMIT 1 FOR UPDATE OF o, c SKIP LOCKED",
        1};
    PGresult *res;
    int r;

    r = db_query(db, &st, (const char *[]){channel}, &res);
    if (r < 0)
        return r;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return -ENOENT;
    }
    ret->id = db_i64(res, 0, 0);
    ret->chat_id = db_str(a, res, 0, 1);
    ret->method = db_str(a, res, 0, 2);
    ret->payload = db_str(a, res, 0, 3);
    ret->chat_kind = db_str(a, res, 0, 4);
    ret->attempts = db_int(res, 0, 5);
    ret->inbound_age_s = strtod(PQgetvalue(res, 0, 6), NULL);
    PQclear(res);
    return ret->chat_id && ret->method && ret->payload && ret->chat_kind ? 0 : -ENOMEM;
}

static int chat_next(struct db *db, const char *channel, const char *chat_id, int ms)
{
    static const struct db_stmt st = {
        "chat_next_send",
        /* clock_timestamp(): from the answer, not from the start of the
         * transaction, which may have waited for the send budget */
        "UPDATE chats SET next_send_at = greatest(next_send_at, "
        "  clock_timestamp() + make_interval(secs => $3::double precision / 1000)) "
        "WHERE channel = $1 AND chat_id = $2",
        3};
    struct db_num m;

    return db_query(db, &st, (const char *[]){channel, chat_id, db_num(&m, ms)}, NULL);
}

int db_outbox_sent(struct db *db, const char *channel, const struct outbox_item *it,
                   const char *remote_id, int gap_ms)
{
    static const struct db_stmt st = {
        "outbox_sent",
        "UPDATE outbox SET sent_at = now(), remote_id = $2, attempts = attempts + 1 "
        "WHERE id = $1",
        2};
    struct db_num i;
    int r;

    r = db_query(db, &st, (const char *[]){db_num(&i, it->id), remote_id}, NULL);
    if (r < 0)
        return r;
    return chat_next(db, channel, it->chat_id, gap_ms);
}

int db_outbox_retry(struct db *db, const struct outbox_item *it, int delay_ms, const char *error)
{
    static const struct db_stmt st = {
        "outbox_retry",
        "UPDATE outbox SET attempts = attempts + 1, last_error = left($3, 500), "
        "  due_at = clock_timestamp() + make_interval(secs => $2::double precision / 1000) "
        "WHERE id = $1",
        3};
    struct db_num i, d;

    return db_query(db, &st, (const char *[]){db_num(&i, it->id), db_num(&d, delay_ms), error},
                    NULL);
}

int db_outbox_chat_wait(struct db *db, const char *channel, const struct outbox_item *it,
                        int wait_s, const char *error)
{
    static const struct db_stmt st = {
        "outbox_429",
        "UPDATE outbox SET attempts = attempts + 1, last_error = left($2, 500) WHERE id = $1", 2};
    struct db_num i;
    int r;

    r = db_query(db, &st, (const char *[]){db_num(&i, it->id), error}, NULL);
    if (r < 0)
        return r;
    return chat_next(db, channel, it->chat_id, wait_s * 1000);
}

int db_outbox_failed(struct db *db, const struct outbox_item *it, const char *error)
{
    static const struct db_stmt st = {
        "outbox_failed",
        "UPDATE outbox SET failed_at = now(), attempts = attempts + 1, last_error = left($2, 500) "
        "WHERE id = $1",
        2};
    struct db_num i;

    return db_query(db, &st, (const char *[]){db_num(&i, it->id), error}, NULL);
}

int db_outbox_next_due(struct db *db, const char *channel, long *ms)
{
    static const struct db_stmt st = {
        "outbox_next_due",
        /* min() of no rows is NULL, and greatest() would turn it into 0 */
        "SELECT ceil(extract(epoch FROM min(greatest(o.due_at, c.next_send_at)) - now()) "
        "  * 1000)::bigint "
        "FROM outbox o JOIN chats c ON c.channel = o.channel AND c.chat_id = o.chat_id "
        "WHERE o.channel = $1 AND o.sent_at IS NULL AND o.failed_at IS NULL AND c.active",
        1};
    PGresult *res;
    int r;

    r = db_query(db, &st, (const char *[]){channel}, &res);
    if (r < 0)
        return r;
    r = PQgetisnull(res, 0, 0) ? -ENOENT : 0;
    if (r == 0)
        *ms = db_i64(res, 0, 0) > 0 ? (long)db_i64(res, 0, 0) : 0;
    PQclear(res);
    return r;
}

int db_send_budget_take(struct db *db, const char *channel, int per_second, long *wait_ms)
{
    /* The row is locked before SET is evaluated, so clock_timestamp() is
     * read by the holder of the lock: slots are an interval apart. The
     * wait is the slot minus a later reading of the clock, and the caller
     * waits from when the answer arrived, later still: never early. */
    static const struct db_stmt st = {
        "send_budget_take",
        "INSERT INTO send_budget AS b (channel, next_at) VALUES ($1, clock_timestamp() + "
        "  make_interval(secs => $2::double precision / 1e6)) "
        "ON CONFLICT (channel) DO UPDATE SET next_at = greatest(b.next_at, clock_timestamp()) + "
        "  make_interval(secs => $2::double precision / 1e6) "
        "RETURNING ceil(extract(epoch FROM b.next_at - clock_timestamp()) * 1000 - $2::double "
        "  precision / 1000)::bigint",
        2};
    struct db_num iv;
    PGresult *res;
    long long w;
    int r;

    if (per_second < 1)
        return -EINVAL;
    r = db_query(
        db, &st,
        (const char *[]){channel, db_num(&iv, (1000LL + SEND_BUDGET_GUARD_MS) * 1000 / per_second)},
        &res);
    if (r < 0)
        return r;
    w = PQntuples(res) == 1 ? db_i64(res, 0, 0) : 0;
    PQclear(res);
    *wait_ms = w > 0 ? (long)w : 0;
    return 0;
}

int db_send_budget_pause(struct db *db, const char *channel, long ms)
{
    static const struct db_stmt st = {
        "send_budget_pause",
        "INSERT INTO send_budget AS b (channel, next_at) VALUES ($1, clock_timestamp() + "
        "  make_interval(secs => $2::double precision / 1000)) "
        "ON CONFLICT (channel) DO UPDATE SET next_at = greatest(b.next_at, clock_timestamp() + "
        "  make_interval(secs => $2::double precision / 1000))",
        2};
    struct db_num m;

    return db_query(db, &st, (const char *[]){channel, db_num(&m, ms)}, NULL);
}

/* A count(*) of one channel's rows. */
static int channel_count(struct db *db, const struct db_stmt *st, const char *channel, long *ret)
{
    PGresult *res;
    int r = db_query(db, st, (const char *[]){channel}, &res);

    if (r < 0)
        return r;
    *ret = (long)db_i64(res, 0, 0);
    PQclear(res);
    return 0;
}

int db_inbox_pending(struct db *db, const char *channel, long *ret)
{
    static const struct db_stmt st = {
        "inbox_pending", "SELECT count(*) FROM inbox WHERE channel = $1 AND handled_at IS NULL", 1};

    return channel_count(db, &st, channel, ret);
}

int db_outbox_pending(struct db *db, const char *channel, long *ret)
{
    static const struct db_stmt st = {
        "outbox_pending",
        "SELECT count(*) FROM outbox WHERE channel = $1 AND sent_at IS NULL AND failed_at IS NULL",
        1};

    return channel_count(db, &st, channel, ret);
}

int db_queue_purge(struct db *db, const char *channel, int days, long *gone)
{
    /* Two statements: the outbox rows first, then the inbox rows no pending
     * message points to (the foreign key nulls the others' inbox_id). */
    static const struct db_stmt st[] = {
        {"purge_outbox",
         "DELETE FROM outbox WHERE channel = $1 AND coalesce(sent_at, failed_at) < "
         "now() - make_interval(days => $2::int)",
         2},
        {"purge_inbox",
         "DELETE FROM inbox WHERE channel = $1 AND handled_at < "
         "now() - make_interval(days => $2::int) AND NOT EXISTS (SELECT 1 FROM outbox x "
         "WHERE x.inbox_id = inbox.id AND x.sent_at IS NULL AND x.failed_at IS NULL)",
         2},
    };
    struct db_num d;
    PGresult *res;
    int r;

    *gone = 0;
    for (size_t k = 0; k < 2; k++) {
        r = db_query(db, &st[k], (const char *[]){channel, db_num(&d, days)}, &res);
        if (r < 0)
            return r;
        *gone += strtol(PQcmdTuples(res), NULL, 10);
        PQclear(res);
    }
    return 0;
}

int db_try_lock(struct db *db, long long key, bool *got)
{
    static const struct db_stmt st = {"try_lock", "SELECT pg_try_advisory_lock($1::bigint)", 1};
    struct db_num k;
    PGresult *res;
    int r;

    r = db_query(db, &st, (const char *[]){db_num(&k, key)}, &res);
    if (r < 0)
        return r;
    *got = PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    return 0;
}

int db_unlock(struct db *db, long long key)
{
    static const struct db_stmt st = {"unlock", "SELECT pg_advisory_unlock($1::bigint)", 1};
    struct db_num k;

    return db_query(db, &st, (const char *[]){db_num(&k, key)}, NULL);
}
