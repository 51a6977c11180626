/* log.h — leveled logging for the control plane. Never called per packet on the data path. */
#ifndef BT_LOG_H
#define BT_LOG_H

enum bt_log_level {
	BT_LOG_ERR = 0,
	BT_LOG_WARN,
	BT_LOG_INFO,
	BT_LOG_DEBUG,
	BT_LOG_PRIVATE, /* keys and secrets; off unless explicitly asked for */
};

void bt_log_set_level(enum bt_log_level lvl);
enum bt_log_level bt_log_get_level(void);
/* Optional: also write to this file (NULL = stderr only). */
void bt_log_set_file(const char *path);
void bt_log(enum bt_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define bt_err(...) bt_log(BT_LOG_ERR, __VA_ARGS__)
#define bt_warn(...) bt_log(BT_LOG_WARN, __VA_ARGS__)
#define bt_info(...) bt_log(BT_LOG_INFO, __VA_ARGS__)
#define bt_debug(...) bt_log(BT_LOG_DEBUG, __VA_ARGS__)

#endif
