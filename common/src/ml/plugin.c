/* The host side of the plugin ABI (pando/plugin.h): which plugins may load,
 * dlopen and the checks of a plugin's table, its instances, its tensors, and
 * the batches handed to it. model.c runs the models; see plugin.h. */
#include "plugin.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pando/error.h"
#include "pando/util.h"

/* Which plugins may be loaded: any (a user's own process), none, or those
 * under one trusted folder. A daemon loads what a submitted job names, so
 * that is code the job's author runs in the daemon. */
static int plugins_any;
static char plugin_dir[PATH_MAX];
static void (*checked_hook)(const char *path); /* tests: runs between check and load */

void pd_model_allow_plugins(const char *dir) {
  plugins_any = dir == NULL;
  plugin_dir[0] = '\0';
  if (dir && *dir && !realpath(dir, plugin_dir))
    pd_strlcpy(plugin_dir, dir, sizeof plugin_dir); /* checked (and refused) per load */
}

void pd__plugin_set_checked_hook(void (*hook)(const char *path)) { checked_hook = hook; }

/* Whether the resolved path `real` is inside plugin_dir. */
static bool in_plugin_dir(const char *real) {
  size_t n = strlen(plugin_dir);
  return strncmp(real, plugin_dir, n) == 0 && real[n] == '/';
}

/* Opens the plugin file model.path once, for plugin_load() to load from
 * that descriptor: what was checked is what runs, whatever happens to the
 * path meanwhile (a symlink flipped after the check). Daemons: the path must
 * resolve into plugin_dir, its last component must not be a symlink
 * (O_NOFOLLOW on the resolved path), it must be a regular file, and the file
 * actually opened must be inside plugin_dir. */
static int plugin_open_file(const char *path, int *fd_out, char *err, size_t errlen) {
  *fd_out = -1;
  char real[PATH_MAX], opened[PATH_MAX], link[64];
  const char *open_path = path;
  int flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;
  if (!plugins_any) {
    if (!plugin_dir[0])
      return pd_errf(err, errlen, -PD_EINVAL_SPEC,
                     "model.path: plugins are disabled on this daemon; start the coordinator, "
                     "servers and workers with plugin_dir set to the folder of trusted plugins");
    if (!realpath(path, real))
      return pd_errf(err, errlen, -PD_EINVAL_SPEC, "model.path: cannot load plugin %s: %s", path,
                     strerror(errno));
    if (!in_plugin_dir(real))
      return pd_errf(err, errlen, -PD_EINVAL_SPEC,
                     "model.path: %s is not in plugin_dir %s, the only folder plugins load from",
                     path, plugin_dir);
    open_path = real;
    flags |= O_NOFOLLOW;
  }
  int fd = open(open_path, flags);
  if (fd < 0)
    return pd_errf(err, errlen, -PD_EINVAL_SPEC, "model.path: cannot load plugin %s: %s", path,
                   errno == ELOOP ? "it became a symlink after it was checked" : strerror(errno));
  struct stat st;
  int rc = 0;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    rc = pd_errf(err, errlen, -PD_EINVAL_SPEC,
                 "model.path: cannot load plugin %s: not a regular file", path);
  } else if (!plugins_any) {
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, opened, sizeof opened - 1);
    if (n <= 0 || (opened[n] = '\0', !in_plugin_dir(opened)))
      rc = pd_errf(err, errlen, -PD_EINVAL_SPEC,
                   "model.path: %s is not in plugin_dir %s, the only folder plugins load from",
                   path, plugin_dir);
  }
  if (rc != 0) {
    close(fd);
    return rc;
  }
  *fd_out = fd;
  return 0;
}

/* Loads model.path and checks its table. Fills p->library and p->api. */
static int plugin_load(const pd_model_spec *spec, pd__plugin *p, char *err, size_t errlen) {
  char fd_path[64];
  int fd;
  memset(p, 0, sizeof *p);
  int rc = plugin_open_file(spec->path, &fd, err, errlen);
  if (rc != 0)
    return rc;
  if (checked_hook)
    checked_hook(spec->path);
  /* dlopen the descriptor that was checked, not the path again */
  snprintf(fd_path, sizeof fd_path, "/proc/self/fd/%d", fd);
  p->library = dlopen(fd_path, RTLD_NOW | RTLD_LOCAL);
  close(fd); /* the mapping stays */
  if (!p->library) {
    const char *why = dlerror();
    size_t n = strlen(fd_path);
    if (strncmp(why, fd_path, n) == 0 && strncmp(why + n, ": ", 2) == 0)
      why += n + 2; /* dlerror() starts with the path again */
    return pd_errf(err, errlen, -PD_EINVAL_SPEC, "model.path: cannot load plugin %s: %s",
                   spec->path, why);
  }
  const pando_plugin_v1 *(*entry)(void) = NULL;
  void *symbol = dlsym(p->library, PANDO_PLUGIN_ENTRY);
  memcpy(&entry, &symbol, sizeof entry); /* POSIX: a data pointer to a function pointer */
  rc = 0;
  const char *missing = NULL;
  if (!entry) {
    rc = pd_errf(err, errlen, -PD_EINVAL_SPEC,
                 "model.path: %s is not a Pando plugin: it does not export %s() (see "
                 "pando/plugin.h)",
                 spec->path, PANDO_PLUGIN_ENTRY);
  } else if (!(p->api = entry())) {
    rc = pd_errf(err, errlen, -PD_EINVAL_SPEC, "model.path: %s: %s() returned NULL", spec->path,
                 PANDO_PLUGIN_ENTRY);
  } else if (p->api->abi_version != PANDO_PLUGIN_ABI_VERSION) {
    rc = pd_errf(err, errlen, -PD_EINVAL_SPEC,
                 "model.path: %s: plugin ABI version %u, but this Pando loads version %d "
                 "(rebuild the plugin against pando/plugin.h)",
                 spec->path, (unsigned)p->api->abi_version, PANDO_PLUGIN_ABI_VERSION);
  } else if (p->api->table_size < sizeof(pando_plugin_v1)) {
    rc = pd_errf(err, errlen, -PD_EINVAL_SPEC,
                 "model.path: %s: the plugin's table has %u bytes, version %d has %zu", spec->path,
                 (unsigned)p->api->table_size, PANDO_PLUGIN_ABI_VERSION, sizeof(pando_plugin_v1));
  } else {
    const pando_plugin_v1 *api = p->api;
    missing = !api->create     ? "create"
              : !api->destroy  ? "destroy"
              : !api->tensors  ? "tensors"
              : !api->init     ? "init"
              : !api->gradient ? "gradient"
              : !api->predict  ? "predict"
              : !api->task     ? "task"
                               : NULL;
    if (missing)
      rc = pd_errf(err, errlen, -PD_EINVAL_SPEC,
                   "model.path: %s: the plugin's table has no %s function", spec->path, missing);
  }
  if (rc != 0) {
    dlclose(p->library);
    memset(p, 0, sizeof *p);
  }
  return rc;
}

int pd__plugin_open(const pd_model_spec *spec, int max_batch, pd__plugin *p, char *err,
                    size_t errlen) {
  int rc = plugin_load(spec, p, err, errlen);
  if (rc != 0)
    return rc;
  /* model.config's "key=value\n" lines, split in a copy */
  char config[PD_PLUGIN_CONFIG_MAX];
  pando_plugin_kv kv[PD_PLUGIN_CONFIG_MAX / 2];
  int nconfig = 0;
  pd_strlcpy(config, spec->config, sizeof config);
  for (char *line = config, *next; line && *line; line = next) {
    next = strchr(line, '\n');
    if (next)
      *next++ = '\0';
    char *eq = strchr(line, '=');
    if (!eq)
      continue;
    *eq = '\0';
    kv[nconfig].key = line;
    kv[nconfig++].value = eq + 1;
  }
  char why[512] = "";
  p->handle = p->api->create(kv, nconfig, spec->layers[0], spec->layers[spec->nlayers - 1],
                             max_batch, why, sizeof why);
  if (!p->handle) {
    why[sizeof why - 1] = '\0';
    rc = pd_errf(err, errlen, -PD_EINVAL_SPEC, "model.config: plugin %s (%s) refused the model: %s",
                 spec->path, p->api->name ? p->api->name : "?", why[0] ? why : "no reason given");
    dlclose(p->library);
    memset(p, 0, sizeof *p);
  }
  return rc;
}

void pd__plugin_close(pd__plugin *p) {
  if (p->handle)
    p->api->destroy(p->handle);
  if (p->library)
    dlclose(p->library);
  memset(p, 0, sizeof *p);
}

int pd__plugin_tensors(const pd_model_spec *spec, const pd__plugin *p, pando_plugin_tensor *tensors,
                       char *err, size_t errlen) {
  memset(tensors, 0, PD_MODEL_MAX_TENSORS * sizeof *tensors);
  int count = p->api->tensors(p->handle, tensors, PD_MODEL_MAX_TENSORS);
  if (count < 1 || count > PD_MODEL_MAX_TENSORS)
    return pd_errf(err, errlen, -PD_EINVAL_SPEC,
                   "model.path: %s: the plugin has %d parameter tensors, must be 1 to %d",
                   spec->path, count, PD_MODEL_MAX_TENSORS);
  uint64_t offset = 0;
  for (int i = 0; i < count; i++) {
    pando_plugin_tensor *t = &tensors[i];
    t->name[sizeof t->name - 1] = '\0';
    int ok = t->ndim >= 1 && t->ndim <= PANDO_PLUGIN_MAX_DIMS;
    uint64_t size = 1;
    for (int d = 0; ok && d < t->ndim; d++) {
      ok = t->shape[d] >= 1 && (uint64_t)t->shape[d] <= (UINT64_C(1) << 40) / size;
      if (ok)
        size *= (uint64_t)t->shape[d];
    }
    if (!ok || offset + size > (UINT64_C(1) << 40))
      return pd_errf(err, errlen, -PD_EINVAL_SPEC,
                     "model.path: %s: the plugin's tensor %d ('%s') has a bad shape (ndim %d)",
                     spec->path, i, t->name, t->ndim);
    offset += size;
  }
  return count;
}

pando_plugin_batch pd__plugin_batch(const pd_dataset *d) {
  pando_plugin_batch b = {.rows = d->rows,
                          .cols = d->cols,
                          .features = d->features,
                          .row_ptr = d->features ? NULL : d->row_ptr,
                          .col_idx = d->features ? NULL : d->col_idx,
                          .values = d->features ? NULL : d->values,
                          .labels = d->labels,
                          .targets = d->targets};
  return b;
}
