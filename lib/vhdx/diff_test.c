/* SPDX-License-Identifier: MIT */
/* diff_test.c - differencing disks on memory files: a child reads its
 * parent until written; sub-block and sub-sector writes set sector-bitmap
 * bits; ZERO and UNMAPPED in a child read zeros; the parent link is
 * checked (parent_linkage, linkage2, sector size, virtual size); chains
 * read through every level; merge folds them.  A shadow image is the
 * model.  7-Zip checks the same files in tests/chain_*. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine.h"
#include "vhdx_testutil.h"

#define MiB (1u << 20)

struct disk {
    struct tm_io *mem;          /* the file */
    uint8_t *shadow;            /* what it should read */
    uint64_t size;
};

/* Opens a chain of memory files, top first; disks[n-1] is the base. */
static struct tm_vhdx *
open_chain(struct disk *disks, unsigned n, unsigned top_flags)
{
    struct tm_vhdx *below = NULL;

    for (unsigned i = n; i-- > 0;) {
        struct tm_vhdx *vd = open_disk(disks[i].mem, i == 0 ? top_flags
                                                            : TM_VHDX_RDONLY);

        if (below != NULL) {
            int rc = tm_vhdx_attach_parent(vd, below);

            if (rc != 0)
                print_error("attach: %s\n", tm_vhdx_err(vd)->msg);
            assert_int_equal(rc, 0);
        }
        below = vd;
    }
    return below;
}

static void
new_base(struct disk *d, uint64_t size, uint32_t bs, uint32_t lss)
{
    struct tm_vhdx *vd = tm_vhdx_new();
    struct tm_vhdx_create_params p = {
        .virtual_size = size, .block_size = bs, .logical_sector = lss,
    };

    d->mem = tm_io_mem_new();
    d->shadow = calloc(1, size);
    d->size = size;
    assert_non_null(d->shadow);
    assert_int_equal(tm_vhdx_create(vd, tm_io_borrow_new(d->mem), &p), 0);
    assert_int_equal(tm_vhdx_close(vd), 0);
}

/* A child of the chain disks[0..n-1] goes into *child. */
static void
new_child(struct disk *child, struct disk *disks, unsigned n, uint32_t bs)
{
    struct tm_vhdx *vd = tm_vhdx_new();
    struct tm_vhdx_create_params p = {
        .block_size = bs, .parent_relative_path = ".\\parent.vhdx",
    };
    int rc;

    p.parent = open_chain(disks, n, TM_VHDX_RDONLY);
    child->mem = tm_io_mem_new();
    child->size = disks[0].size;
    child->shadow = malloc(child->size);
    assert_non_null(child->shadow);
    memcpy(child->shadow, disks[0].shadow, child->size);
    rc = tm_vhdx_create(vd, tm_io_borrow_new(child->mem), &p);
    if (rc != 0)
        print_error("create: %s\n", tm_vhdx_err(vd)->msg);
    assert_int_equal(rc, 0);
    assert_int_equal(tm_vhdx_close(vd), 0);
}

static void
free_disks(struct disk *d, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        tm_io_close(d[i].mem);
        free(d[i].shadow);
    }
}

static void
assert_reads_shadow(struct tm_vhdx *vd, const struct disk *d)
{
    uint8_t *buf = malloc(d->size);

    assert_non_null(buf);
    assert_int_equal(tm_vhdx_read(vd, buf, d->size, 0), 0);
    for (uint64_t i = 0; i < d->size; i++) {
        if (buf[i] != d->shadow[i]) {
            print_error("byte %llu: read %02x, want %02x\n",
                        (unsigned long long)i, buf[i], d->shadow[i]);
            fail();
        }
    }
    free(buf);
}

static void
write_both(struct tm_vhdx *vd, struct disk *d, uint64_t off, size_t len,
           uint8_t byte)
{
    uint8_t *buf = malloc(len);

    assert_non_null(buf);
    memset(buf, byte, len);
    if (tm_vhdx_write(vd, buf, len, off) != 0)
        print_error("write: %s\n", tm_vhdx_err(vd)->msg);
    memcpy(d->shadow + off, buf, len);
    free(buf);
}

static uint64_t
block_state(struct tm_vhdx *vd, uint64_t blk)
{
    return VHDX_BAT_STATE(vd->bat[vhdx_bat_index(&vd->g, blk)]);
}

static void
child_reads_parent_then_own_writes(void **state)
{
    struct disk d[2];
    struct tm_vhdx *vd;
    struct tm_vhdx_info info;

    (void)state;
    new_base(&d[1], 16 * MiB, MiB, 512);
    vd = open_disk(d[1].mem, 0);
    write_both(vd, &d[1], 0, 10 * MiB, 0x41);
    assert_int_equal(tm_vhdx_close(vd), 0);
    new_child(&d[0], &d[1], 1, 2 * MiB);

    vd = open_chain(d, 2, 0);
    assert_int_equal(tm_vhdx_get_info(vd, &info), 0);
    assert_int_equal(info.type, TM_VHDX_DIFFERENCING);
    assert_int_equal(info.blocks_not_present, 8);
    assert_reads_shadow(vd, &d[0]);
    /* Sub-sector, unaligned, across a block boundary. */
    write_both(vd, &d[0], 1000, 5000, 0x42);
    write_both(vd, &d[0], 2 * MiB - 7, 20, 0x43);
    write_both(vd, &d[0], 3, 1, 0x44);
    assert_int_equal(block_state(vd, 0), VHDX_PAYLOAD_PARTIALLY_PRESENT);
    assert_int_equal(block_state(vd, 1), VHDX_PAYLOAD_PARTIALLY_PRESENT);
    /* A whole block is FULLY_PRESENT at once. */
    write_both(vd, &d[0], 4 * MiB, 2 * MiB, 0x45);
    assert_int_equal(block_state(vd, 2), VHDX_PAYLOAD_FULLY_PRESENT);
    assert_reads_shadow(vd, &d[0]);
    assert_int_equal(tm_vhdx_close(vd), 0);

    /* After reopening: the bitmap came back from the file. */
    vd = open_chain(d, 2, TM_VHDX_RDONLY);
    assert_reads_shadow(vd, &d[0]);
    assert_int_equal(tm_vhdx_check(vd, NULL, NULL), 0);
    assert_int_equal(tm_vhdx_close(vd), 0);
    /* The parent was not touched. */
    vd = open_disk(d[1].mem, TM_VHDX_RDONLY);
    assert_reads_shadow(vd, &d[1]);
    assert_int_equal(tm_vhdx_close(vd), 0);
    free_disks(d, 2);
}

static void
partial_block_filled_becomes_fully_present(void **state)
{
    struct disk d[2];
    struct tm_vhdx *vd;

    (void)state;
    new_base(&d[1], 4 * MiB, MiB, 4096);
    vd = open_disk(d[1].mem, 0);
    write_both(vd, &d[1], 0, 4 * MiB, 0x11);
    assert_int_equal(tm_vhdx_close(vd), 0);
    new_child(&d[0], &d[1], 1, MiB);
    vd = open_chain(d, 2, 0);
    for (uint64_t off = 0; off < MiB; off += 64 * 1024) {
        write_both(vd, &d[0], off + 4096, 60 * 1024, 0x22);
        write_both(vd, &d[0], off, 4096, 0x33);
    }
    assert_int_equal(block_state(vd, 0), VHDX_PAYLOAD_FULLY_PRESENT);
    assert_reads_shadow(vd, &d[0]);
    assert_int_equal(tm_vhdx_close(vd), 0);
    vd = open_chain(d, 2, TM_VHDX_RDONLY);
    assert_reads_shadow(vd, &d[0]);
    assert_int_equal(tm_vhdx_close(vd), 0);
    free_disks(d, 2);
}

static void
zero_and_unmapped_read_zeros_not_parent(void **state)
{
    struct disk d[2];
    struct tm_vhdx *vd;
    bool alloc;
    uint64_t run;

    (void)state;
    new_base(&d[1], 8 * MiB, MiB, 512);
    vd = open_disk(d[1].mem, 0);
    write_both(vd, &d[1], 0, 8 * MiB, 0x5a);
    assert_int_equal(tm_vhdx_close(vd), 0);
    new_child(&d[0], &d[1], 1, MiB);
    vd = open_chain(d, 2, 0);
    assert_int_equal(tm_vhdx_discard(vd, MiB, MiB, TM_VHDX_ZERO), 0);
    assert_int_equal(tm_vhdx_discard(vd, 2 * MiB, MiB, TM_VHDX_UNMAP), 0);
    /* Partial: zeros written over the parent's data. */
    assert_int_equal(tm_vhdx_discard(vd, 3 * MiB + 100, 1000, TM_VHDX_ZERO),
                     0);
    /* A whole block of zeros written takes no space. */
    write_both(vd, &d[0], 4 * MiB, MiB, 0);
    memset(d[0].shadow + MiB, 0, 2 * MiB);
    memset(d[0].shadow + 3 * MiB + 100, 0, 1000);
    assert_int_equal(block_state(vd, 1), VHDX_PAYLOAD_ZERO);
    assert_int_equal(block_state(vd, 2), VHDX_PAYLOAD_UNMAPPED);
    assert_int_equal(block_state(vd, 3), VHDX_PAYLOAD_PARTIALLY_PRESENT);
    assert_int_equal(block_state(vd, 4), VHDX_PAYLOAD_ZERO);
    assert_reads_shadow(vd, &d[0]);
    /* Block status: the parent's data shows through NOT_PRESENT. */
    assert_int_equal(tm_vhdx_block_status(vd, 0, 8 * MiB, &run, &alloc), 0);
    assert_true(alloc);
    assert_int_equal(run, MiB);
    assert_int_equal(tm_vhdx_block_status(vd, MiB, 7 * MiB, &run, &alloc),
                     0);
    assert_false(alloc);
    assert_int_equal(run, 2 * MiB);
    assert_int_equal(tm_vhdx_close(vd), 0);
    vd = open_chain(d, 2, TM_VHDX_RDONLY);
    assert_reads_shadow(vd, &d[0]);
    assert_int_equal(tm_vhdx_close(vd), 0);
    free_disks(d, 2);
}

static void
parent_link_is_checked(void **state)
{
    struct disk d[2];
    struct tm_vhdx *vd, *pa;
    uint8_t b;
    struct tm_vhdx_locator loc;

    (void)state;
    new_base(&d[1], 4 * MiB, MiB, 512);
    new_child(&d[0], &d[1], 1, MiB);

    /* Without a parent the child opens, but cannot read. */
    vd = open_disk(d[0].mem, TM_VHDX_RDONLY);
    assert_int_equal(tm_vhdx_read(vd, &b, 1, 0), TM_E_CHAIN);
    assert_non_null(strstr(tm_vhdx_err(vd)->msg, "not open"));
    assert_non_null(tm_vhdx_locator(vd));
    assert_string_equal(tm_vhdx_locator(vd)->relative_path,
                        ".\\parent.vhdx");
    assert_int_equal(tm_vhdx_close(vd), 0);

    /* A write renews the parent's DataWriteGuid: the link breaks. */
    pa = open_disk(d[1].mem, 0);
    write_both(pa, &d[1], 0, 512, 0x77);
    assert_int_equal(tm_vhdx_close(pa), 0);
    vd = open_disk(d[0].mem, TM_VHDX_RDONLY);
    assert_int_equal(tm_vhdx_attach_parent(vd, open_disk(d[1].mem,
                                                        TM_VHDX_RDONLY)),
                     TM_E_CHAIN);
    assert_non_null(strstr(tm_vhdx_err(vd)->msg, "parent_linkage"));
    assert_int_equal(tm_vhdx_close(vd), 0);

    /* parent_linkage2 naming the new GUID is accepted. */
    pa = open_disk(d[1].mem, TM_VHDX_RDONLY);
    vd = open_disk(d[0].mem, 0);
    assert_int_equal(vhdx_locator_copy(&loc, tm_vhdx_locator(vd)), 0);
    loc.linkage2 = pa->hdr.data_write_guid;
    loc.has_linkage2 = true;
    assert_int_equal(tm_vhdx_set_locator(vd, &loc), 0);
    vhdx_locator_free(&loc);
    assert_int_equal(tm_vhdx_attach_parent(vd, pa), 0);
    assert_int_equal(tm_vhdx_read(vd, &b, 1, 0), 0);
    assert_int_equal(b, 0x77);
    assert_int_equal(tm_vhdx_close(vd), 0);
    free_disks(d, 2);
}

static void
parent_geometry_must_fit(void **state)
{
    struct disk a, b, big, child;
    struct tm_vhdx *vd;

    (void)state;
    new_base(&a, 4 * MiB, MiB, 512);
    new_base(&b, 4 * MiB, MiB, 4096);
    new_base(&big, 8 * MiB, MiB, 512);
    new_child(&child, &a, 1, MiB);
    /* --force-style relink to other parents, checked at attach. */
    vd = open_disk(child.mem, TM_VHDX_RDONLY);
    assert_int_equal(tm_vhdx_attach_parent(vd, open_disk(b.mem,
                                                        TM_VHDX_RDONLY)),
                     TM_E_CHAIN);
    assert_int_equal(tm_vhdx_close(vd), 0);
    vd = open_disk(child.mem, TM_VHDX_RDONLY);
    assert_int_equal(tm_vhdx_attach_parent(vd, open_disk(big.mem,
                                                        TM_VHDX_RDONLY)),
                     TM_E_CHAIN);
    assert_int_equal(tm_vhdx_close(vd), 0);
    free_disks(&a, 1);
    free_disks(&b, 1);
    free_disks(&big, 1);
    free_disks(&child, 1);
}

/* A child larger than its parent reads zeros past the parent's end. */
static void
child_larger_than_parent(void **state)
{
    struct disk p;
    struct tm_vhdx *vd = tm_vhdx_new();
    struct tm_io *mem = tm_io_mem_new();
    struct tm_vhdx_create_params cp = {
        .virtual_size = 8 * MiB, .parent_relative_path = ".\\p.vhdx",
    };
    uint8_t *buf = malloc(8 * MiB);

    (void)state;
    new_base(&p, 4 * MiB, MiB, 512);
    cp.parent = open_disk(p.mem, 0);
    write_both(cp.parent, &p, 0, 4 * MiB, 0x61);
    assert_int_equal(tm_vhdx_flush(cp.parent), 0);
    assert_int_equal(tm_vhdx_create(vd, tm_io_borrow_new(mem), &cp), 0);
    assert_int_equal(tm_vhdx_read(vd, buf, 8 * MiB, 0), 0);
    for (uint64_t i = 0; i < 8 * MiB; i++)
        assert_int_equal(buf[i], i < 4 * MiB ? 0x61 : 0);
    assert_int_equal(tm_vhdx_close(vd), 0);
    /* Smaller than the parent: refused. */
    vd = tm_vhdx_new();
    cp.virtual_size = 2 * MiB;
    cp.parent = open_disk(p.mem, TM_VHDX_RDONLY);
    assert_int_equal(tm_vhdx_create(vd, tm_io_borrow_new(mem), &cp),
                     TM_E_INVALID);
    tm_vhdx_close(vd);
    tm_io_close(mem);
    free(buf);
    free_disks(&p, 1);
}

/* Random writes and discards through a chain of depth 8, checked against
 * the shadow after each level, then merged level by level. */
static void
random_chain_of_eight(void **state)
{
    enum { DEPTH = 9 };
    struct disk d[DEPTH];
    uint64_t size = 12 * MiB;
    uint32_t seed = 12345;

    (void)state;
    /* d[DEPTH-1] is the base; children are made downwards. */
    new_base(&d[DEPTH - 1], size, MiB, 512);
    for (int lvl = DEPTH - 1; lvl >= 0; lvl--) {
        struct tm_vhdx *vd = open_chain(&d[lvl], (unsigned)(DEPTH - lvl), 0);

        for (int k = 0; k < 25; k++) {
            uint64_t off, len;

            seed = seed * 1103515245u + 12345u;
            off = (seed >> 4) % size;
            seed = seed * 1103515245u + 12345u;
            len = 1 + (seed >> 4) % (3 * MiB);
            if (len > size - off)
                len = size - off;
            if (k % 7 == 6) {
                assert_int_equal(tm_vhdx_discard(vd, off, len,
                                                 k % 2 ? TM_VHDX_ZERO
                                                       : TM_VHDX_UNMAP), 0);
                memset(d[lvl].shadow + off, 0, len);
            } else {
                write_both(vd, &d[lvl], off, len, (uint8_t)(lvl * 16 + k));
            }
        }
        assert_reads_shadow(vd, &d[lvl]);
        assert_int_equal(tm_vhdx_close(vd), 0);
        if (lvl > 0)
            new_child(&d[lvl - 1], &d[lvl], (unsigned)(DEPTH - lvl),
                      (1u << (lvl % 3)) * MiB);
    }
    {
        struct tm_vhdx *vd = open_chain(d, DEPTH, TM_VHDX_RDONLY);

        assert_reads_shadow(vd, &d[0]);
        assert_int_equal(tm_vhdx_close(vd), 0);
    }
    /* Fold the top three into d[3]; the chain then reads the same. */
    {
        struct tm_vhdx *top = open_disk(d[0].mem, 0);
        struct tm_vhdx *h = top;

        for (int i = 1; i < DEPTH; i++) {
            struct tm_vhdx *p = open_disk(d[i].mem, i <= 3 ? 0
                                                          : TM_VHDX_RDONLY);

            assert_int_equal(tm_vhdx_attach_parent(h, p), 0);
            h = p;
        }
        assert_int_equal(tm_vhdx_merge(top, 3), 0);
        assert_int_equal(tm_vhdx_close(top), 0);
    }
    memcpy(d[3].shadow, d[0].shadow, size);
    {
        struct tm_vhdx *vd = open_chain(&d[3], DEPTH - 3, TM_VHDX_RDONLY);

        assert_reads_shadow(vd, &d[3]);
        assert_int_equal(tm_vhdx_check(vd, NULL, NULL), 0);
        assert_int_equal(tm_vhdx_close(vd), 0);
    }
    free_disks(d, DEPTH);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(child_reads_parent_then_own_writes),
        cmocka_unit_test(partial_block_filled_becomes_fully_present),
        cmocka_unit_test(zero_and_unmapped_read_zeros_not_parent),
        cmocka_unit_test(parent_link_is_checked),
        cmocka_unit_test(parent_geometry_must_fit),
        cmocka_unit_test(child_larger_than_parent),
        cmocka_unit_test(random_chain_of_eight),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
