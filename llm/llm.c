#include "llm.h"

#include <curl/curl.h>
#include <stdio.h>

const char *llm_http_version(void)
{
    static char v[96];
    const curl_version_info_data *info = curl_version_info(CURLVERSION_NOW);

    snprintf(v, sizeof(v), "libcurl %s (%s)", info->version,
             info->ssl_version ? info->ssl_version : "no TLS");
    return v;
}
