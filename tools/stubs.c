/* Temporary: subcommands not yet written. */
#include "uffd.h"
int cmd_probe(int argc, char **argv) { (void)argc; (void)argv; return EXIT_FAILED; }
int cmd_demo(int argc, char **argv) { (void)argc; (void)argv; return EXIT_FAILED; }
int cmd_bench(int argc, char **argv) { (void)argc; (void)argv; return EXIT_FAILED; }
