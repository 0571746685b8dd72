/*
 * test_libtremote.c: libtremote (include/tremote/tremote.h).
 *
 *   test_libtremote            GPU types, providers, and the errors that
 *                              need no broker
 *   test_libtremote broker     against the broker of $TREMOTE_BROKER_SOCKET
 *                              (tests/integration/libtremote.sh starts one
 *                              with one LOCAL machine): create a machine,
 *                              look it up by index, compare, remove it
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "philox.h"
#include "tremote/tremote.h"

static void test_gpu_types(void **state)
{
  static const char *const names[] = {"T4",        "L4",   "A10G",
                                      "A100-40GB", "A100-80GB", "L40S",
                                      "H100",      "H200", "B200"};
  tremote_gpu_type t;

  (void)state;
  for (int i = 0; i < TREMOTE_GPU_COUNT; i++) {
    char lower[16];

    assert_string_equal(tremote_gpu_name((tremote_gpu_type)i), names[i]);
    assert_int_equal(tremote_gpu_parse(names[i], &t), 0);
    assert_int_equal(t, i);
    for (size_t k = 0; k <= strlen(names[i]); k++)
      lower[k] = (char)(names[i][k] >= 'A' && names[i][k] <= 'Z'
                            ? names[i][k] - 'A' + 'a'
                            : names[i][k]);
    assert_int_equal(tremote_gpu_parse(lower, &t), 0); /* as Modal does */
    assert_int_equal(t, i);
    assert_non_null(tremote_gpu_info((tremote_gpu_type)i)->modal_spec);
  }
  assert_int_equal(tremote_gpu_info(TREMOTE_GPU_A100_80GB)->memory,
                   80ull * 1000 * 1000 * 1000);
  assert_string_equal(tremote_gpu_info(TREMOTE_GPU_H100)->architecture,
                      "Hopper");
  assert_int_equal(tremote_gpu_info(TREMOTE_GPU_B200)->cc_major, 10);
  assert_null(tremote_gpu_info(TREMOTE_GPU_COUNT));
  assert_null(tremote_gpu_name((tremote_gpu_type)-1));

  assert_int_equal(tremote_gpu_parse("A100", &t), -1);
  assert_string_equal(tremote_last_error(),
                      "unknown GPU type 'A100' (valid: T4, L4, A10G, "
                      "A100-40GB, A100-80GB, L40S, H100, H200, B200)");
  assert_int_equal(tremote_gpu_parse(NULL, &t), -1);
  assert_int_equal(tremote_gpu_parse("", &t), -1);
}

/* Philox4x32-10 against Random123's known-answer vectors, and the float
   layout of philox.h. */
static void test_philox(void **state)
{
  static const uint32_t ctr[3][4] = {
      {0, 0, 0, 0},
      {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
      {0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}};
  static const uint32_t key[3][2] = {
      {0, 0}, {0xffffffffu, 0xffffffffu}, {0xa4093822u, 0x299f31d0u}};
  static const uint32_t want[3][4] = {
      {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u},
      {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu},
      {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}};
  uint32_t out[4], w[4];
  float all[12], part[4];

  (void)state;
  for (int i = 0; i < 3; i++) {
    tr_philox4x32_10(ctr[i], key[i], out);
    assert_memory_equal(out, want[i], sizeof(out));
  }
  /* Value v comes from block offset + v / 4; a fill may start mid-way. */
  tr_rand_floats(7, 5, TR_RAND_UNIFORM, 0, all, 12);
  tr_rand_floats(7, 5, TR_RAND_UNIFORM, 8, part, 4);
  assert_memory_equal(all + 8, part, sizeof(part));
  {
    const uint32_t c[4] = {5 + 2, 0, 0, 0}, k[2] = {7, 0};

    tr_philox4x32_10(c, k, w);
    assert_true(part[1] == (float)(w[1] >> 8) * (1.0f / 16777216.0f));
  }
  assert_int_equal(tr_rand_blocks(0), 0);
  assert_int_equal(tr_rand_blocks(5), 2);
}

static void test_providers(void **state)
{
  (void)state;
  assert_string_equal(tremote_provider_name(TREMOTE_PROVIDER_MODAL), "modal");
  assert_string_equal(tremote_provider_name(TREMOTE_PROVIDER_STATIC),
                      "static");
  assert_string_equal(tremote_provider_name(TREMOTE_PROVIDER_LOCAL), "local");
  assert_null(tremote_provider_name((tremote_provider)7));
}

/* What fails before any broker is asked. */
static void test_bad_input(void **state)
{
  (void)state;
  assert_null(tremote_create_machine(TREMOTE_PROVIDER_LOCAL, "GTX480", NULL));
  assert_non_null(strstr(tremote_last_error(), "unknown GPU type 'GTX480'"));
  {
    struct tremote_machine_opts o = {.idle_timeout_s = -5};

    assert_null(tremote_create_modal_machine("A100-40GB", &o));
    assert_non_null(strstr(tremote_last_error(), "idle_timeout_s: -1 "
                                                 "(never) or 0 to 86400"));
    o.idle_timeout_s = 60;
    assert_null(tremote_create_machine(TREMOTE_PROVIDER_LOCAL, "T4", &o));
    assert_non_null(strstr(tremote_last_error(), "are for MODAL machines"));
  }
  assert_null(tremote_create_machine(TREMOTE_PROVIDER_STATIC, "H100", NULL));
  assert_non_null(strstr(tremote_last_error(), "needs opts.address"));
  assert_null(tremote_create_machine((tremote_provider)9, "H100", NULL));
  assert_non_null(strstr(tremote_last_error(), "unknown provider 9"));
}

/* No broker: -1 and a line saying how to start one; never a hang. */
static void test_no_broker(void **state)
{
  (void)state;
  setenv("TREMOTE_CONTROL_SOCKET", "/nonexistent/control.sock", 1);
  assert_int_equal(tremote_device_count(), -1);
  assert_non_null(strstr(tremote_last_error(), "no tremote broker answers "
                                               "at /nonexistent"));
  assert_int_equal(tremote_is_available(), 0);
  assert_null(tremote_get_device_by_index(0));
  assert_null(tremote_create_machine(TREMOTE_PROVIDER_LOCAL, "T4", NULL));
  unsetenv("TREMOTE_CONTROL_SOCKET");
}

/* ---- against a broker ------------------------------------------------------- */

static void test_machine_life(void **state)
{
  tremote_machine *m, *again, *first;
  char s[256];
  int n0, idx, n = -1;

  (void)state;
  n0 = tremote_device_count();
  assert_int_equal(n0, 1); /* the script's one LOCAL machine */
  assert_int_equal(tremote_is_available(), 1);
  first = tremote_get_device_by_index(0);
  assert_non_null(first);

  m = tremote_create_machine(TREMOTE_PROVIDER_LOCAL, "t4", NULL);
  if (!m)
    fail_msg("create: %s", tremote_last_error());
  assert_int_equal(strncmp(tremote_machine_device_id(m), "local-t4-", 9), 0);
  assert_int_equal(strlen(tremote_machine_device_id(m)), 9 + 8);
  assert_string_equal(tremote_machine_device_name(m), "Local T4");
  assert_int_equal(tremote_machine_gpu(m), TREMOTE_GPU_T4);
  assert_int_equal(tremote_machine_provider(m), TREMOTE_PROVIDER_LOCAL);
  assert_null(tremote_machine_modal_gpu_spec(m));
  assert_non_null(strstr(tremote_last_error(), "only for Modal machines"));
  idx = tremote_machine_remote_index(m);
  assert_int_equal(idx, 1);
  assert_int_equal(tremote_get_device_index(m), idx);

  again = tremote_get_device_by_index(idx);
  assert_non_null(again);
  assert_true(tremote_machine_equal(m, again));
  assert_true(tremote_devices_compatible(m, again));
  assert_int_equal(tremote_machine_hash(m), tremote_machine_hash(again));
  assert_string_equal(tremote_machine_device_name(again), "Local T4");
  assert_false(tremote_machine_equal(m, first));
  assert_false(tremote_devices_compatible(m, first));
  tremote_machine_to_string(m, s, sizeof(s));
  assert_non_null(strstr(s, tremote_machine_device_id(m)));
  assert_non_null(strstr(s, "index=1"));

  /* The new LOCAL machine starts: then it is a device too. */
  for (int i = 0; i < 200 && n != n0 + 1; i++) {
    n = tremote_device_count();
    usleep(50000);
  }
  assert_int_equal(n, n0 + 1);

  assert_int_equal(tremote_remove_machine(m), 0);
  assert_int_equal(tremote_get_device_index(m), -1);
  assert_non_null(strstr(tremote_last_error(), "has no machine"));
  assert_null(tremote_get_device_by_index(idx));
  assert_non_null(strstr(tremote_last_error(), "no machine with index 1"));
  assert_int_equal(tremote_remove_machine(m), -1);
  assert_non_null(strstr(tremote_last_error(), "no machine named"));
  assert_int_equal(tremote_device_count(), n0);
  tremote_machine_free(m);
  tremote_machine_free(again);
  tremote_machine_free(first);
}

int main(int argc, char **argv)
{
  const struct CMUnitTest offline[] = {
      cmocka_unit_test(test_gpu_types),
      cmocka_unit_test(test_philox),
      cmocka_unit_test(test_providers),
      cmocka_unit_test(test_bad_input),
      cmocka_unit_test(test_no_broker),
  };
  const struct CMUnitTest online[] = {
      cmocka_unit_test(test_machine_life),
  };

  if (argc > 1 && strcmp(argv[1], "broker") == 0)
    return cmocka_run_group_tests(online, NULL, NULL);
  return cmocka_run_group_tests(offline, NULL, NULL);
}
