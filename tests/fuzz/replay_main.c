/*
 * replay_main.c — run a fuzz target over saved inputs without libFuzzer
 * (every CTest run replays the corpus this way, with the normal compiler).
 * Arguments: files or directories (read non-recursively).
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    size_t got = fread(buf, 1, (size_t)(n > 0 ? n : 0), f);
    fclose(f);
    LLVMFuzzerTestOneInput(buf, got);
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    int count = 0, errors = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) < 0) {
            continue; /* an absent corpus directory is an empty corpus */
        }
        if (!S_ISDIR(st.st_mode)) {
            errors += run_file(argv[i]);
            count++;
            continue;
        }
        DIR *d = opendir(argv[i]);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (e->d_name[0] == '.') {
                continue;
            }
            char path[4096];
            snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name);
            struct stat fst;
            if (stat(path, &fst) < 0 || !S_ISREG(fst.st_mode)) {
                continue; /* subdirectories, sockets...: not inputs */
            }
            errors += run_file(path);
            count++;
        }
        if (d) {
            closedir(d);
        }
    }
    printf("replayed %d inputs\n", count);
    return errors ? 1 : 0;
}
