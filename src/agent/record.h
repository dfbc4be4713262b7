/*
 * record.h: one measurement as it flows from an input through the pipeline to the spool:
 * measurement name, string tags, typed fields, optional timestamp, plus what every record gets on
 * receipt (source, receive time) and, when spooled, its sequence number.
 *
 * Fixed budget: at most EA_REC_MAX_TAGS tags, EA_REC_MAX_FIELDS fields and EA_REC_ARENA bytes of
 * copied strings; adding past that fails (the input answers 413/400 and counts a reject). Strings
 * point either into the record's own arena or into memory that outlives the record's processing
 * (request buffers, config); ea_rec_copy rebases the former.
 */
#ifndef EA_RECORD_H
#define EA_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

#define EA_REC_MAX_TAGS 32
#define EA_REC_MAX_FIELDS 128
#define EA_REC_ARENA 32768

enum ea_vtype { EA_V_FLOAT, EA_V_INT, EA_V_BOOL, EA_V_STR, EA_V_RAW /* JSON text kept verbatim */ };

typedef struct ea_field {
    const char *key, *str;
    uint32_t klen, slen;
    int type;
    double f;
    int64_t i;
    int b;
} ea_field;

typedef struct ea_tag {
    const char *key, *val;
    uint32_t klen, vlen;
} ea_tag;

typedef struct ea_record {
    const char *measurement;
    uint32_t mlen;
    int ntags, nfields;
    ea_tag tags[EA_REC_MAX_TAGS];
    ea_field fields[EA_REC_MAX_FIELDS];
    int64_t ts;
    int has_ts;
    const char *source; /* "http", "udp", "tcp", "mqtt", "window" (static strings) */
    uint64_t received_ms;
    uint32_t used;
    char arena[EA_REC_ARENA];
} ea_record;

void ea_rec_init(ea_record *r, const char *source, uint64_t received_ms);
const char *ea_rec_strdup(ea_record *r, const char *s, size_t n); /* NULL when the arena is full */
int ea_rec_set_measurement(ea_record *r, const char *s, size_t n);
int ea_rec_add_tag(ea_record *r, const char *k, size_t kl, const char *v, size_t vl); /* replaces same key */
ea_field *ea_rec_add_field(ea_record *r, const char *k, size_t kl); /* replaces same key; type FLOAT 0 */
ea_field *ea_rec_field(ea_record *r, const char *name);
const ea_tag *ea_rec_tag(const ea_record *r, const char *name);
void ea_rec_remove_field(ea_record *r, int idx);
int ea_field_number(const ea_field *f, double *out); /* FLOAT/INT/BOOL -> 0; else -1 */
void ea_rec_copy(ea_record *dst, const ea_record *src);
/* {"measurement":..,"tags":{..},"fields":{..},"ts":..,"source":..,"received_ms":..,"seq":..} */
int ea_rec_to_json(const ea_record *r, uint64_t seq, ea_buf *out);
/* Series key (measurement + sorted-by-position tags) for deadband/window state. */
uint64_t ea_rec_series_hash(const ea_record *r);

#endif
