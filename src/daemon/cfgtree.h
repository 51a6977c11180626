/* cfgtree.h — the generic layer of the config parser: swanctl.conf-style text into a tree of
 * sections and settings, each with its line. config.c gives the tree its meaning. */
#ifndef BT_CFGTREE_H
#define BT_CFGTREE_H

#include <stdbool.h>
#include <stddef.h>

struct cnode {
	char *name;
	char *value; /* NULL for a section */
	int line;
	bool used;   /* set by the interpreter, so unknown keys can be reported */
	struct cnode *child, *next;
};

/* Parse text into a root section. Returns NULL with "name:line: message" in err. */
struct cnode *cfgtree_parse(const char *text, size_t len, const char *name, char *err, size_t errlen);
void cfgtree_free(struct cnode *n);

#endif
