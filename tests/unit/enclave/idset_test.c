/* The id set against a plain bitmap: a long random run of adds and removes must
 * agree on every membership, every count and every refusal, through several
 * growths and with clusters long enough to exercise the backward shift. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "enclave/idset.h"

#define UNIVERSE 5000

static void test_matches_a_bitmap(void **state) {
  (void)state;
  struct aln_idset set = {0};
  static unsigned char ref[UNIVERSE + 1];
  size_t num = 0;
  uint64_t x = 0x9e3779b97f4a7c15ULL;

  memset(ref, 0, sizeof(ref));
  for (int step = 0; step < 200000; step++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    uint64_t id = 1 + x % UNIVERSE;
    /* Lean toward adds early and removes late, so the set grows and then drains. */
    int add = (x >> 40) % 100 < (step < 100000 ? 70 : 30);
    if (add) {
      aln_status st = aln_idset_add(&set, id);
      assert_int_equal(st, ref[id] ? ALN_ERR_EXISTS : ALN_OK);
      if (!ref[id])
        num++;
      ref[id] = 1;
    } else {
      aln_status st = aln_idset_remove(&set, id);
      assert_int_equal(st, ref[id] ? ALN_OK : ALN_ERR_NOT_FOUND);
      if (ref[id])
        num--;
      ref[id] = 0;
    }
    assert_int_equal(set.num, num);
    if (step % 997 == 0) {
      for (uint64_t i = 1; i <= UNIVERSE; i++)
        assert_int_equal(aln_idset_contains(&set, i), ref[i]);
    }
  }
  for (uint64_t i = 1; i <= UNIVERSE; i++)
    assert_int_equal(aln_idset_contains(&set, i), ref[i]);
  aln_idset_cleanup(&set);
  assert_int_equal(set.num, 0);
  assert_false(aln_idset_contains(&set, 1));
}

/* Sequential ids (as SQLite hands out) with every other one removed: the probe
 * chains left behind must still find every survivor. */
static void test_sequential_ids_and_refusals(void **state) {
  (void)state;
  struct aln_idset set = {0};
  for (uint64_t i = 1; i <= 100000; i++)
    assert_int_equal(aln_idset_add(&set, i), ALN_OK);
  for (uint64_t i = 2; i <= 100000; i += 2)
    assert_int_equal(aln_idset_remove(&set, i), ALN_OK);
  for (uint64_t i = 1; i <= 100000; i++)
    assert_int_equal(aln_idset_contains(&set, i), i % 2 == 1);
  assert_int_equal(set.num, 50000);
  assert_int_equal(aln_idset_add(&set, 0), ALN_ERR_USAGE);
  assert_int_equal(aln_idset_remove(&set, 0), ALN_ERR_USAGE);
  assert_false(aln_idset_contains(&set, 0));
  assert_false(aln_idset_contains(NULL, 1));
  assert_int_equal(aln_idset_add(NULL, 1), ALN_ERR_USAGE);
  aln_idset_cleanup(&set);
  aln_idset_cleanup(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_matches_a_bitmap),
      cmocka_unit_test(test_sequential_ids_and_refusals),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
