/* log.c — leveled logging to stderr and optionally a file. Control plane only: it takes a lock. */
#include "util/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static enum bt_log_level log_level = BT_LOG_INFO;
static FILE *log_file;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"error", "warn", "info", "debug", "private"};

void bt_log_set_level(enum bt_log_level lvl) { log_level = lvl; }
enum bt_log_level bt_log_get_level(void) { return log_level; }

void bt_log_set_file(const char *path)
{
	pthread_mutex_lock(&log_lock);
	if (log_file)
		fclose(log_file);
	log_file = path && *path ? fopen(path, "a") : NULL;
	if (log_file)
		setvbuf(log_file, NULL, _IOLBF, 0);
	pthread_mutex_unlock(&log_lock);
}

/* The whole line in one write: stderr is unbuffered, and piecewise output would cost a system call
 * per piece (and let a reader of the file see half lines). */
static void log_to(FILE *f, const char *line, size_t len)
{
	fwrite(line, 1, len, f);
}

void bt_log(enum bt_log_level lvl, const char *fmt, ...)
{
	if (lvl > log_level)
		return;
	struct timespec ts;
	struct tm tm;
	char buf[1024], *line = buf;
	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(buf, 32, "%H:%M:%S", &tm);
	n += (size_t)snprintf(buf + n, sizeof(buf) - n, ".%03ld %-5s ", ts.tv_nsec / 1000000, level_names[lvl]);
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
	va_end(ap);
	if (m < 0)
		return;
	if ((size_t)m + 1 >= sizeof(buf) - n && (line = malloc(n + (size_t)m + 2))) { /* a long one */
		memcpy(line, buf, n);
		va_start(ap, fmt);
		vsnprintf(line + n, (size_t)m + 1, fmt, ap);
		va_end(ap);
	}
	if (!line) { /* no memory: what fits */
		line = buf;
		m = (int)(sizeof(buf) - n - 2);
	}
	n += (size_t)m;
	line[n++] = '\n';
	pthread_mutex_lock(&log_lock);
	log_to(stderr, line, n);
	if (log_file)
		log_to(log_file, line, n);
	pthread_mutex_unlock(&log_lock);
	if (line != buf)
		free(line);
}
