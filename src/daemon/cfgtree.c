/* cfgtree.c — lexer and tree builder for the swanctl.conf-like syntax: "name {", "}", "key = value",
 * '#' comments, double-quoted values, one statement per line. */
#include "daemon/cfgtree.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 8
#define MAX_VALUE 4096
#define MAX_NAME 63

static void node_free(struct cnode *n)
{
	while (n) {
		struct cnode *next = n->next;
		node_free(n->child);
		free(n->name);
		free(n->value);
		free(n);
		n = next;
	}
}

void cfgtree_free(struct cnode *n) { node_free(n); }

static struct cnode *node_add(struct cnode *parent, const char *name, size_t nlen, int line)
{
	struct cnode *n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->name = strndup(name, nlen);
	if (!n->name) {
		free(n);
		return NULL;
	}
	n->line = line;
	struct cnode **tail = &parent->child;
	while (*tail)
		tail = &(*tail)->next;
	*tail = n;
	return n;
}

static bool name_char(char c) { return isalnum((unsigned char)c) || c == '_' || c == '-' || c == '.'; }

struct cnode *cfgtree_parse(const char *text, size_t len, const char *name, char *err, size_t errlen)
{
	struct cnode *root = calloc(1, sizeof(*root));
	struct cnode *stack[MAX_DEPTH + 1];
	int depth = 0, line = 0;
	size_t pos = 0;
	char *buf = malloc(MAX_VALUE + 1);

	if (!root || !buf) {
		snprintf(err, errlen, "%s: out of memory", name);
		goto fail;
	}
	stack[0] = root;
	if (memchr(text, '\0', len)) {
		/* say on which line the NUL stands */
		const char *nul = memchr(text, '\0', len);
		int l = 1;
		for (const char *c = text; c < nul; c++)
			l += *c == '\n';
		snprintf(err, errlen, "%s:%d: NUL byte in the file", name, l);
		goto fail;
	}
	while (pos < len) {
		/* one line: copy it without the comment, honouring quotes */
		size_t end = pos;
		while (end < len && text[end] != '\n')
			end++;
		line++;
		size_t n = 0;
		bool quoted = false;
		for (size_t i = pos; i < end; i++) {
			char c = text[i];
			if (c == '"')
				quoted = !quoted;
			else if (c == '#' && !quoted)
				break;
			if (n >= MAX_VALUE) {
				snprintf(err, errlen, "%s:%d: line too long (max %d)", name, line, MAX_VALUE);
				goto fail;
			}
			buf[n++] = c == '\t' || c == '\r' ? ' ' : c;
		}
		buf[n] = '\0';
		pos = end + 1;
		if (quoted) {
			snprintf(err, errlen, "%s:%d: unterminated quote", name, line);
			goto fail;
		}
		/* trim */
		char *s = buf;
		while (*s == ' ')
			s++;
		char *e = s + strlen(s);
		while (e > s && e[-1] == ' ')
			*--e = '\0';
		if (*s == '\0')
			continue;
		if (strcmp(s, "}") == 0) {
			if (depth == 0) {
				snprintf(err, errlen, "%s:%d: '}' without an open section", name, line);
				goto fail;
			}
			depth--;
			continue;
		}
		char *k = s;
		while (name_char(*s))
			s++;
		size_t klen = (size_t)(s - k);
		while (*s == ' ')
			s++;
		if (klen == 0) {
			snprintf(err, errlen, "%s:%d: expected a name, found '%.20s'", name, line, k);
			goto fail;
		}
		if (klen > MAX_NAME) {
			snprintf(err, errlen, "%s:%d: name too long", name, line);
			goto fail;
		}
		if (*s == '{' && s[1] == '\0') {
			if (depth == MAX_DEPTH) {
				snprintf(err, errlen, "%s:%d: sections nested too deep", name, line);
				goto fail;
			}
			for (struct cnode *c = stack[depth]->child; c; c = c->next)
				if (strlen(c->name) == klen && strncmp(c->name, k, klen) == 0) {
					snprintf(err, errlen, "%s:%d: duplicate %s '%.*s' (first at line %d)", name,
						 line, c->value ? "setting" : "section", (int)klen, k, c->line);
					goto fail;
				}
			struct cnode *sec = node_add(stack[depth], k, klen, line);
			if (!sec) {
				snprintf(err, errlen, "%s: out of memory", name);
				goto fail;
			}
			stack[++depth] = sec;
			continue;
		}
		if (*s != '=') {
			snprintf(err, errlen, "%s:%d: expected '=' or '{' after '%.*s'", name, line, (int)klen, k);
			goto fail;
		}
		s++;
		while (*s == ' ')
			s++;
		/* a value may be quoted as a whole */
		size_t vlen = strlen(s);
		if (vlen >= 2 && s[0] == '"' && s[vlen - 1] == '"') {
			s++;
			vlen -= 2;
		} else if (memchr(s, '"', vlen)) {
			snprintf(err, errlen, "%s:%d: stray quote in value", name, line);
			goto fail;
		}
		if (depth == 0) {
			snprintf(err, errlen, "%s:%d: setting '%.*s' outside of any section", name, line, (int)klen, k);
			goto fail;
		}
		for (struct cnode *c = stack[depth]->child; c; c = c->next)
			if (strlen(c->name) == klen && strncmp(c->name, k, klen) == 0) {
				snprintf(err, errlen, "%s:%d: duplicate %s '%.*s' (first at line %d)", name, line,
					 c->value ? "setting" : "section", (int)klen, k, c->line);
				goto fail;
			}
		struct cnode *kv = node_add(stack[depth], k, klen, line);
		if (!kv || !(kv->value = strndup(s, vlen))) {
			snprintf(err, errlen, "%s: out of memory", name);
			goto fail;
		}
	}
	if (depth != 0) {
		snprintf(err, errlen, "%s:%d: section '%s' (line %d) is not closed", name, line ? line : 1,
			 stack[depth]->name, stack[depth]->line);
		goto fail;
	}
	free(buf);
	return root;
fail:
	free(buf);
	node_free(root);
	return NULL;
}
