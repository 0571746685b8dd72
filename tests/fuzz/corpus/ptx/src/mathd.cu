__global__ void mathd(double *d, unsigned *u, int *i, long long *t) {
  int k = threadIdx.x; double y = d[k];
  d[k] = sqrt(y) + y / 3.0 + fma(y,y,y) + floor(y) + rint(y) + fabs(y) + fmin(y, 2.0) + (double)u[k] + (double)(long long)t[k] + __drcp_rn(y) + 1.0/y + (y > 2.0 ? 1e300 : -2.5e-300);
  u[k] = __popc(u[k]) + __clz(i[k]) + __brev(u[k]) + __byte_perm(u[k], u[k+1], 0x5410) + __funnelshift_l(u[k], u[k+1], 5) + __funnelshift_r(u[k], u[k+1], u[k+2]) + __mul24(i[k], 3) + __umulhi(u[k], u[k+3]) + __sad(i[k], i[k+1], u[k]) + __ffs(i[k]) + __popcll(t[k]) + __clzll(t[k]) + (unsigned)__double2uint_rz(y) + u[k] / u[k+1] + u[k] % 7 + i[k] / 5 + __brevll(t[k]) + __dp4a(i[k], i[k+1], 3) ;
  t[k] = clock64() + clock() + t[k] * t[k+1] / t[k+2] + __mul64hi(t[k], t[k+1]) + __umul64hi(t[k], 7) + (t[k] % t[k+3]) + __double_as_longlong(y) + llabs(t[k]);
}
