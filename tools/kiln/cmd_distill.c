/* cmd_distill.c — `kiln distill`: trains a student model from a teacher checkpoint with the
 * distillation loss (1 − α)·CE + α·T²·KL(teacher‖student) (kn_train_opts.teacher). Every
 * `kiln train` option applies (cli_train_main); this file adds --teacher, --temperature and
 * --alpha. */
#include <string.h>

#include "cli.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: kiln distill --teacher CKPT --model STUDENT [--temperature T] [--alpha A] [kiln train options]\n"
            "  --teacher CKPT     the teacher: a checkpoint written by kiln train (file, or its run directory);\n"
            "                     it must take the same inputs and output the same classes as the student\n"
            "  --model M          the student: a model description file, or a built-in example (");
    cli_list_builtin(f);
    fprintf(f,
            ")\n"
            "  --temperature T    softening temperature of both softmaxes in the KL term (default 4)\n"
            "  --alpha A          weight of the teacher's soft targets, in [0, 1] (default 0.9): the loss is\n"
            "                     (1 - A)*CE(student, labels) + A*T^2*KL(softmax(teacher/T) || softmax(student/T))\n"
            "  The teacher runs frozen in inference mode in the student's training step; the student's\n"
            "  checkpoint does not contain it. Default --out: runs/<student name>_distilled.\n");
    cli_train_options_help(f);
}

static int option(int argc, char **argv, int *i, kn_train_opts *o)
{
    const char *v = NULL;
    int r;
    if ((r = cli_opt(argc, argv, i, "--teacher", &v)) > 0)
        o->teacher = v;
    else if ((r = cli_opt(argc, argv, i, "--temperature", &v)) > 0)
        return cli_double("distill", "--temperature", v, 1e-3, 1e3, &o->temperature) ? 1 : 2;
    else if ((r = cli_opt(argc, argv, i, "--alpha", &v)) > 0)
        return cli_double("distill", "--alpha", v, 0, 1, &o->alpha) ? 1 : 2;
    return r;
}

static int check(const kn_train_opts *o)
{
    if (o->teacher)
        return 0;
    fprintf(stderr, "kiln distill: give the teacher's checkpoint with --teacher CKPT (see kiln distill --help)\n");
    return 1;
}

int cmd_distill(int argc, char **argv)
{
    const cli_train_ext x = {.cmd = "distill", .usage = usage, .option = option, .check = check,
                             .default_model = NULL, .out_suffix = "_distilled"};
    return cli_train_main(argc, argv, &x);
}
