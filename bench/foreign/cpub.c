// A foreign publisher for Relayr and nats-server: what the bench's own drivers are checked
// against (bench/README.md, "What the drivers see, and what a foreign client sees").
// Prebuilt PUB frames, big back-to-back write()s, verbose off, PING/PONG at the end.
//
//   gcc -O2 -o /tmp/cpub bench/foreign/cpub.c
//   /tmp/cpub relayr|nats PORT SIZE COUNT [BATCH_BYTES=262144] [SUBJECT=cbench]
//
// Prints the rate and its own CPU per message; read the server's CPU from
// /proc/<pid>/task/*/schedstat around a run (the bench's `srv µs/msg`).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/resource.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec/1e9;}
static void wall(int fd,const char*b,size_t n){while(n){ssize_t w=write(fd,b,n);if(w<=0){perror("write");exit(1);}b+=w;n-=w;}}
int main(int argc,char**argv){
  if(argc<5){fprintf(stderr,"usage: cpub relayr|nats PORT SIZE COUNT [BATCH_BYTES] [SUBJECT]\n");return 2;}
  int relayr=strcmp(argv[1],"relayr")==0; int port=atoi(argv[2]); int size=atoi(argv[3]); long count=atol(argv[4]);
  size_t batch=argc>5?atol(argv[5]):256*1024;
  int fd=socket(AF_INET,SOCK_STREAM,0); struct sockaddr_in a={0}; a.sin_family=AF_INET; a.sin_port=htons(port); a.sin_addr.s_addr=htonl(0x7f000001);
  if(connect(fd,(void*)&a,sizeof a)){perror("connect");return 1;}
  int one=1; setsockopt(fd,IPPROTO_TCP,TCP_NODELAY,&one,sizeof one);
  const char*subj=argc>6?argv[6]:"cbench"; char head[256]; int hl=sprintf(head,relayr?"PUB topic:%s %d\r\n":"PUB %s %d\r\n",subj,size);
  int fl=hl+size+2; char*frame=malloc(fl); memcpy(frame,head,hl); memset(frame+hl,'x',size); memcpy(frame+hl+size,"\r\n",2);
  long per=batch/fl; if(per<1)per=1; char*buf=malloc(per*fl); for(long i=0;i<per;i++)memcpy(buf+i*fl,frame,fl);
  const char*hello=relayr?"CONNECT {\"verbose\":false}\r\nPING\r\n":"CONNECT {\"verbose\":false,\"pedantic\":false}\r\nPING\r\n";
  wall(fd,hello,strlen(hello));
  char rb[65536]; // wait for PONG
  for(;;){ssize_t r=read(fd,rb,sizeof rb-1); if(r<=0){perror("read");return 1;} rb[r]=0; if(strstr(rb,"PONG"))break;}
  double t0=now(); long sent=0;
  while(sent<count){long n=count-sent<per?count-sent:per; wall(fd,buf,n*fl); sent+=n;}
  wall(fd,"PING\r\n",6);
  for(;;){ssize_t r=read(fd,rb,sizeof rb-1); if(r<=0){perror("read");return 1;} rb[r]=0; if(strstr(rb,"PONG"))break;}
  double t=now()-t0; struct rusage u; getrusage(RUSAGE_SELF,&u);
  double cpu=u.ru_utime.tv_sec+u.ru_utime.tv_usec/1e6+u.ru_stime.tv_sec+u.ru_stime.tv_usec/1e6;
  printf("%s %d B: %.2f M msgs/s (%.2f s), client cpu %.3f us/msg\n",argv[1],size,count/t/1e6,t,cpu*1e6/count);
  return 0;
}
