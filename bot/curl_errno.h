/* How the chat channels' API clients (tg_api.c, wa_api.c) turn a libcurl
 * result into -errno: one table, so that both channels' threads read the
 * same codes the same way. */
#ifndef RIVET_CURL_ERRNO_H
#define RIVET_CURL_ERRNO_H

#include <curl/curl.h>
#include <errno.h>

static inline int curl_errno(CURLcode c)
{
    switch (c) {
    case CURLE_OK:
        return 0;
    case CURLE_OPERATION_TIMEDOUT:
        return -ETIMEDOUT;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return -ECONNREFUSED;
    case CURLE_WRITE_ERROR: /* the response buffer's maximum */
        return -E2BIG;
    case CURLE_FILESIZE_EXCEEDED: /* CURLOPT_MAXFILESIZE */
        return -EFBIG;
    case CURLE_ABORTED_BY_CALLBACK: /* the stop flag */
        return -ECANCELED;
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
        return -ECONNRESET;
    case CURLE_OUT_OF_MEMORY:
        return -ENOMEM;
    default:
        return -EIO;
    }
}

#endif
