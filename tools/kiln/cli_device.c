/* cli_device.c — the --device option shared by kiln train, eval, predict and bench:
 * cpu | cuda | cuda:N | auto (kn_device_parse), with the error printed the CLI way. */
#include "cli.h"

bool cli_device(const char *cmd, const char *s, kn_backend_kind *backend, int *device)
{
    char why[256];
    if (kn_device_parse(s, backend, device, why, sizeof why) == KN_OK)
        return true;
    fprintf(stderr, "kiln %s: --device: %s\n", cmd, why);
    return false;
}
