/* Routing of messages to other chats (channels.h). */
#include "channels.h"

#include <errno.h>
#include <string.h>

#include "handlers.h"
#include "tg.h"
#include "wa.h"

int channel_queue(struct db *db, struct arena *a, enum channel ch, const char *chat,
                  const struct reply *rep, int64_t *outbox_id)
{
    switch (ch) {
    case CHANNEL_TELEGRAM:
        return tg_queue_reply(db, a, chat, rep, 0, 0, outbox_id);
    case CHANNEL_WHATSAPP:
        return wa_queue_reply(db, a, chat, rep, 0, outbox_id);
    default:
        /* The console has no outbox to queue into. */
        return -ENOTSUP;
    }
}

int channel_queue_others(struct db *db, struct arena *a, const struct replies *out)
{
    for (const struct reply *rep = out->head; rep; rep = rep->next) {
        int r;

        if (!rep->chat_id)
            continue;
        r = channel_queue(db, a, rep->channel, rep->chat_id, rep, NULL);
        if (r < 0 && r != -ENOTSUP)
            return r;
    }
    return 0;
}
