/* tests/unit/t_push_check.c: push credential fields, bearer tokens, Web Push endpoints and private addresses. */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <string.h>

#include "app/push.h"
#include "tap.h"

static void
test_fields(void)
{
	char big[300];

	ok(push_apns_id_valid("TEAM123456"), "APNs id: the mock's team id");
	ok(push_apns_id_valid("KEY1234567"), "APNs id: the mock's key id");
	ok(!push_apns_id_valid("TEAM12345"), "APNs id: 9 characters");
	ok(!push_apns_id_valid("TEAM1234567"), "APNs id: 11 characters");
	ok(!push_apns_id_valid("team123456"), "APNs id: lower case (Apple issues upper case)");
	ok(!push_apns_id_valid("TEAM12345\n"), "APNs id: a newline");
	ok(!push_apns_id_valid("TEAM\"2345X"), "APNs id: a quote");
	ok(!push_apns_id_valid(NULL), "APNs id: NULL");

	ok(push_topic_valid("com.example.app"), "topic: a bundle id");
	ok(push_topic_valid("com.example.app.voip"), "topic: .voip");
	ok(push_topic_valid("com.example-co.app.push-type.liveactivity"), "topic: liveactivity");
	ok(!push_topic_valid("com.example.app\r\nx-evil: 1"), "topic: CR LF");
	ok(!push_topic_valid(""), "topic: empty");
	ok(!push_topic_valid(".com.example"), "topic: a leading dot");
	ok(!push_topic_valid("com..example"), "topic: an empty part");
	ok(!push_topic_valid("com.example/app"), "topic: a slash");
	memset(big, 'a', 256);
	big[256] = '\0';
	ok(!push_topic_valid(big), "topic: 256 bytes");

	ok(push_fcm_project_valid("mock-project"), "project: the mock's");
	ok(push_fcm_project_valid("my-app-12345"), "project: letters, digits, hyphens");
	ok(!push_fcm_project_valid("abc"), "project: too short");
	ok(!push_fcm_project_valid("a234567890123456789012345678901"), "project: 31 characters");
	ok(!push_fcm_project_valid("My-Project"), "project: upper case");
	ok(!push_fcm_project_valid("1project"), "project: starts with a digit");
	ok(!push_fcm_project_valid("project-"), "project: ends with a hyphen");
	ok(!push_fcm_project_valid("proj/../x"), "project: path characters");
	ok(!push_fcm_project_valid("project%2f"), "project: percent");

	ok(push_email_valid("pusher@mock-project.iam.gserviceaccount.com"), "email: the mock's");
	ok(push_email_valid("a.b+c_d-e@example.org"), "email: local part punctuation");
	ok(!push_email_valid("nobody"), "email: no @");
	ok(!push_email_valid("a@b@example.org"), "email: two @");
	ok(!push_email_valid("a@localhost"), "email: no dot in the domain");
	ok(!push_email_valid("a b@example.org"), "email: a space");
	ok(!push_email_valid("a@example.org\r\n"), "email: CR LF");
	ok(!push_email_valid("\"a\"@example.org"), "email: quoted local part");
	ok(!push_email_valid("@example.org"), "email: empty local part");
}

static void
test_b64token(void)
{
	char big[5000];

	ok(push_b64token_valid("ya29.mock-AbC_d~e+f/g", 4096), "b64token: Google-like");
	ok(push_b64token_valid("abc==", 4096), "b64token: trailing =");
	ok(!push_b64token_valid("", 4096), "b64token: empty");
	ok(!push_b64token_valid("=abc", 4096), "b64token: starts with =");
	ok(!push_b64token_valid("ab=c", 4096), "b64token: = inside");
	ok(!push_b64token_valid("ab c", 4096), "b64token: a space");
	ok(!push_b64token_valid("ab\r\nx-evil: 1", 4096), "b64token: CR LF");
	ok(!push_b64token_valid("ab\"c", 4096), "b64token: a quote");
	ok(!push_b64token_valid("caf\xc3\xa9", 4096), "b64token: non-ASCII");
	ok(!push_b64token_valid(NULL, 4096), "b64token: NULL");
	memset(big, 'a', 4097);
	big[4097] = '\0';
	ok(!push_b64token_valid(big, 4096), "b64token: 4097 bytes");
	big[4096] = '\0';
	ok(push_b64token_valid(big, 4096), "b64token: 4096 bytes");
}

static int
v4(const char *text)
{
	struct sockaddr_in a;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	if (inet_pton(AF_INET, text, &a.sin_addr) != 1)
		return -1;
	return push_addr_private((struct sockaddr *)&a, sizeof(a));
}

static int
v6(const char *text)
{
	struct sockaddr_in6 a;

	memset(&a, 0, sizeof(a));
	a.sin6_family = AF_INET6;
	if (inet_pton(AF_INET6, text, &a.sin6_addr) != 1)
		return -1;
	return push_addr_private((struct sockaddr *)&a, sizeof(a));
}

static void
test_addresses(void)
{
	static const char *const priv4[] = { "127.0.0.1", "127.255.255.254", "10.0.0.1",
	    "10.255.255.255", "172.16.0.1", "172.31.255.255", "192.168.1.1", "100.64.0.1",
	    "100.127.255.255", "169.254.169.254", "0.0.0.0", "0.1.2.3", "224.0.0.1",
	    "239.255.255.250", "240.0.0.1", "255.255.255.255", "192.0.0.8", "198.18.0.1" };
	static const char *const pub4[] = { "8.8.8.8", "1.1.1.1", "172.15.255.255",
	    "172.32.0.0", "100.63.255.255", "100.128.0.0", "169.253.0.1", "192.169.0.1",
	    "11.0.0.1", "223.255.255.255", "17.253.144.10" };
	static const char *const priv6[] = { "::1", "::", "fc00::1", "fdff:ffff::1", "fe80::1",
	    "febf::1", "ff02::1", "ff0e::1", "::ffff:127.0.0.1", "::ffff:10.1.2.3",
	    "::ffff:169.254.169.254", "::ffff:192.168.0.1", "::ffff:0.0.0.0", "64:ff9b::a00:1",
	    "::127.0.0.1", "fec0::1" };
	static const char *const pub6[] = { "2001:4860:4860::8888", "2606:4700::1111",
	    "::ffff:8.8.8.8", "64:ff9b::808:808", "2a00:1450::1" };
	struct sockaddr sa;
	size_t i;

	for (i = 0; i < sizeof(priv4) / sizeof(priv4[0]); i++)
		ok(v4(priv4[i]) == 1, "private: %s", priv4[i]);
	for (i = 0; i < sizeof(pub4) / sizeof(pub4[0]); i++)
		ok(v4(pub4[i]) == 0, "public: %s", pub4[i]);
	for (i = 0; i < sizeof(priv6) / sizeof(priv6[0]); i++)
		ok(v6(priv6[i]) == 1, "private: %s", priv6[i]);
	for (i = 0; i < sizeof(pub6) / sizeof(pub6[0]); i++)
		ok(v6(pub6[i]) == 0, "public: %s", pub6[i]);
	memset(&sa, 0, sizeof(sa));
	sa.sa_family = AF_UNIX;
	ok(push_addr_private(&sa, sizeof(sa)) == 1, "another family counts as private");
	ok(push_addr_private(NULL, 0) == 1, "NULL counts as private");
}

static void
test_endpoints(void)
{
	static const char *const bad[] = {
		"http://push.example.net/x",		/* http, not allowed */
		"ftp://push.example.net/x",
		"https://user:pw@push.example.net/x",
		"https://push.example.net@10.0.0.1/x",
		"https://10.0.0.1/x",
		"https://127.0.0.1:8443/x",
		"https://169.254.169.254/latest",
		"https://[::1]/x",
		"https://[::ffff:127.0.0.1]/x",
		"https://[fe80::1]/x",
		"https://2130706433/x",			/* 127.0.0.1 as one number */
		"https://0x7f.1/x",
		"https://127.1/x",
		"https://push.example.net:0/x",
		"https://push.example.net:65536/x",
		"https://push.example.net:x/x",
		"https:///x",
		"https://push..example.net/x",
		"https://-push.example.net/x",
		"https://push.example.net./x",
		"https://push_example.net/x",
		"https://push.example.net/a b",
		"https://push.example.net/a\r\nb",
		"https://push.example.net/#frag",
		"https://[::1/x",
		"https://[zz::1]/x",
		"",
	};
	static const char *const good[] = {
		"https://push.example.net/x",
		"https://fcm.googleapis.com/fcm/send/abc:def?x=1",
		"https://updates.push.services.mozilla.com/wpush/v2/gAAAA",
		"HTTPS://Push.Example.NET:8443/x",
		"https://8.8.8.8/x",
		"https://[2001:4860:4860::8888]/x",
		"https://localhost:8443/x",		/* a name: checked when connecting */
	};
	struct push_endpoint ep;
	size_t i;
	int allowed;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ok(push_endpoint_check(bad[i], "", &allowed) != NULL, "refused: %s", bad[i]);
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ok(push_endpoint_check(good[i], "", &allowed) == NULL && !allowed,
		    "accepted: %s", good[i]);

	ok(push_endpoint_parse("HTTPS://Push.Example.NET:8443/x", &ep) == NULL &&
	    strcmp(ep.host, "push.example.net") == 0 && ep.port == 8443 && ep.https,
	    "host lower-cased, port read");
	ok(push_endpoint_parse("http://[::1]/x", &ep) == NULL && strcmp(ep.host, "[::1]") == 0 &&
	    ep.port == 80 && !ep.https && ep.private_ip, "IPv6 literal in brackets, port 80");

	/* the operator's allow list exempts exactly its host:port entries */
	ok(push_endpoint_check("http://127.0.0.1:9000/push/x", "127.0.0.1:9000", &allowed) ==
	    NULL && allowed, "allow list: http to 127.0.0.1:9000");
	ok(push_endpoint_check("http://127.0.0.1:9001/push/x", "127.0.0.1:9000", &allowed) !=
	    NULL && !allowed, "allow list: another port is not exempt");
	ok(push_endpoint_check("http://localhost:9000/x", "127.0.0.1:9000", &allowed) != NULL,
	    "allow list: another host name is not exempt");
	ok(push_endpoint_check("http://127.0.0.1/x", "127.0.0.1:80, [::1]:8080", &allowed) ==
	    NULL && allowed, "allow list: the default port, comma-separated");
	ok(push_endpoint_check("http://[::1]:8080/x", "127.0.0.1:80, [::1]:8080", &allowed) ==
	    NULL && allowed, "allow list: IPv6");
	ok(push_endpoint_check("http://user@127.0.0.1:9000/x", "127.0.0.1:9000", &allowed) !=
	    NULL, "allow list: userinfo is still refused");

	ok(push_allow_list_check("") == NULL, "allow list syntax: empty");
	ok(push_allow_list_check("127.0.0.1:9000 [::1]:80,push.local:443") == NULL,
	    "allow list syntax: three entries");
	ok(push_allow_list_check("127.0.0.1") != NULL, "allow list syntax: no port");
	ok(push_allow_list_check("http://127.0.0.1:9000") != NULL, "allow list syntax: a URL");
	ok(push_allow_list_check("a@b:1") != NULL, "allow list syntax: userinfo");
	ok(push_allow_list_check("host:70000") != NULL, "allow list syntax: a bad port");
}

int
main(void)
{
	test_fields();
	test_b64token();
	test_addresses();
	test_endpoints();
	return done_testing();
}
