/* The job-spec parser (pd_job_spec_parse, libyaml underneath): any text is
 * a spec or an error message, never a crash. */
#include "fuzz.h"
#include "pando/spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  pd_job_spec *spec = malloc(sizeof *spec);
  char err[512] = "";
  if (pd_job_spec_parse((const char *)data, size, spec, err, sizeof err) != 0 && err[0] == '\0')
    abort();
  free(spec);
  return 0;
}
