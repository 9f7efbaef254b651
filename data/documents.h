/* The documents `hyla data prepare` reads: a text file is one document, or many when cut at a
 * separator; a folder holds one document per file. Documents are kept as one text, each starting
 * where the one before ends. */
#ifndef HYLA_DOCUMENTS_H
#define HYLA_DOCUMENTS_H

#include "util/error.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
  unsigned char *text; /* every document's bytes, one after another */
  size_t n;
  int64_t *starts; /* where each document begins in text: increasing from 0, each below n */
  int64_t n_docs;
} hy_documents;

/* The documents at path: a file (gzip-compressed when its name ends in .gz, data/text.h), or a
 * folder, whose files (not its subfolders, nor names that start with '.') are read in the byte
 * order of their names, each one document. With a separator (sep_len > 0) every file is also cut
 * at each occurrence of it, which is dropped. Empty documents are left out. `output` is the file
 * being prepared: a folder that holds it is refused, so that it is never read as a document. A
 * stop asked (util/stop.h) ends the reading with an error. */
int hy_documents_read(const char *path, const char *sep, size_t sep_len, const char *output,
                      hy_documents *d, hy_error *err);
void hy_documents_free(hy_documents *d);

/* A separator as written on the command line, its C escapes (\n, \t, \r, \\, \", \', \0, \xHH,
 * \ooo, \a, \b, \f, \v) decoded into out (at least strlen(text) bytes); *n gets its length.
 * -1 with err for an unknown or cut escape, or an empty separator. */
int hy_unescape(const char *text, char *out, size_t *n, hy_error *err);

#endif
