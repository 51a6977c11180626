/* log.c — leveled logging to stderr and optionally a file. Control plane only: it takes a lock. */
#include "util/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
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

static void log_to(FILE *f, const char *stamp, enum bt_log_level lvl, const char *fmt, va_list ap)
{
	fprintf(f, "%s %-5s ", stamp, level_names[lvl]);
	vfprintf(f, fmt, ap);
	fputc('\n', f);
}

void bt_log(enum bt_log_level lvl, const char *fmt, ...)
{
	if (lvl > log_level)
		return;
	struct timespec ts;
	struct tm tm;
	char stamp[32];
	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);
	snprintf(stamp + n, sizeof(stamp) - n, ".%03ld", ts.tv_nsec / 1000000);

	va_list ap;
	pthread_mutex_lock(&log_lock);
	va_start(ap, fmt);
	log_to(stderr, stamp, lvl, fmt, ap);
	va_end(ap);
	if (log_file) {
		va_start(ap, fmt);
		log_to(log_file, stamp, lvl, fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&log_lock);
}
