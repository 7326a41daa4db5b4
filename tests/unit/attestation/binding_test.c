/* Tests for the channel binding: a known answer computed outside this code base,
 * sensitivity to every input, and refusal of malformed arguments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "attestation/binding.h"

struct inputs {
  uint8_t nonce[ALN_HOST_NONCE_LEN];
  uint8_t exporter[ALN_EXPORTER_LEN];
  uint8_t pub[32];
};

/* nonce = 00..1f, exporter = 20..3f, key = 40..5f */
static void inputs_init(struct inputs *in) {
  for (size_t i = 0; i < 32; i++) {
    in->nonce[i] = (uint8_t)i;
    in->exporter[i] = (uint8_t)(32 + i);
    in->pub[i] = (uint8_t)(64 + i);
  }
}

static void compute(const struct inputs *in, size_t pub_len, uint8_t out[ALN_BINDING_LEN]) {
  assert_int_equal(aln_binding_compute(out, in->nonce, sizeof(in->nonce), in->exporter, in->pub, pub_len), ALN_OK);
}

static void test_known_answer(void **state) {
  (void)state;
  /* Computed independently with:
   *   python3 -c "import hashlib; print(hashlib.sha256(b'aileron-attest-v1' +
   *     bytes(range(0,32)) + bytes(range(32,64)) + bytes(range(64,96))).hexdigest())" */
  static const uint8_t expected[ALN_BINDING_LEN] = {
      0x12, 0x93, 0x06, 0x0f, 0xad, 0xd3, 0x81, 0xa3, 0x04, 0xb4, 0x97, 0x6b, 0x10, 0x25, 0x7a, 0x73,
      0x94, 0x41, 0x27, 0xc9, 0x6d, 0x9b, 0x8a, 0x03, 0x8f, 0xb2, 0x64, 0x0d, 0x3a, 0xaf, 0x88, 0x6e,
  };
  struct inputs in;
  uint8_t out[ALN_BINDING_LEN];
  inputs_init(&in);
  compute(&in, sizeof(in.pub), out);
  assert_memory_equal(out, expected, sizeof(expected));
}

/* Flipping one bit of any input byte, or dropping the key's last byte, must change
 * the binding: each field is really hashed, and the key length counts. */
static void test_every_input_byte_matters(void **state) {
  (void)state;
  struct inputs base, in;
  uint8_t ref[ALN_BINDING_LEN], got[ALN_BINDING_LEN];
  inputs_init(&base);
  compute(&base, sizeof(base.pub), ref);
  for (size_t i = 0; i < sizeof(struct inputs); i++) {
    in = base;
    ((uint8_t *)&in)[i] ^= 0x01;
    compute(&in, sizeof(in.pub), got);
    assert_memory_not_equal(got, ref, sizeof(ref));
  }
  compute(&base, sizeof(base.pub) - 1, got);
  assert_memory_not_equal(got, ref, sizeof(ref));
}

/* Swapping nonce and exporter must change the binding: the fields have roles. */
static void test_field_order_matters(void **state) {
  (void)state;
  struct inputs in, swapped;
  uint8_t a[ALN_BINDING_LEN], b[ALN_BINDING_LEN];
  inputs_init(&in);
  swapped = in;
  memcpy(swapped.nonce, in.exporter, 32);
  memcpy(swapped.exporter, in.nonce, 32);
  compute(&in, sizeof(in.pub), a);
  compute(&swapped, sizeof(swapped.pub), b);
  assert_memory_not_equal(a, b, sizeof(a));
}

static void test_deterministic(void **state) {
  (void)state;
  struct inputs in;
  uint8_t a[ALN_BINDING_LEN], b[ALN_BINDING_LEN];
  inputs_init(&in);
  compute(&in, sizeof(in.pub), a);
  compute(&in, sizeof(in.pub), b);
  assert_memory_equal(a, b, sizeof(a));
}

static void test_bad_arguments_refused(void **state) {
  (void)state;
  struct inputs in;
  uint8_t out[ALN_BINDING_LEN];
  uint8_t big_nonce[ALN_HOST_NONCE_LEN + 1] = {0};
  inputs_init(&in);
  /* nonce lengths around the one accepted value */
  assert_int_equal(aln_binding_compute(out, in.nonce, 0, in.exporter, in.pub, 32), ALN_ERR_USAGE);
  assert_int_equal(aln_binding_compute(out, in.nonce, 31, in.exporter, in.pub, 32), ALN_ERR_USAGE);
  assert_int_equal(aln_binding_compute(out, big_nonce, sizeof(big_nonce), in.exporter, in.pub, 32), ALN_ERR_USAGE);
  assert_int_equal(aln_binding_compute(out, NULL, 32, in.exporter, in.pub, 32), ALN_ERR_USAGE);
  /* empty or missing key, missing exporter or output */
  assert_int_equal(aln_binding_compute(out, in.nonce, 32, in.exporter, in.pub, 0), ALN_ERR_USAGE);
  assert_int_equal(aln_binding_compute(out, in.nonce, 32, in.exporter, NULL, 32), ALN_ERR_USAGE);
  assert_int_equal(aln_binding_compute(out, in.nonce, 32, NULL, in.pub, 32), ALN_ERR_USAGE);
  assert_int_equal(aln_binding_compute(NULL, in.nonce, 32, in.exporter, in.pub, 32), ALN_ERR_USAGE);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_known_answer),          cmocka_unit_test(test_every_input_byte_matters),
      cmocka_unit_test(test_field_order_matters),   cmocka_unit_test(test_deterministic),
      cmocka_unit_test(test_bad_arguments_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
