/*
 * This file contains the USB CCID driver's device discovery: which USB devices are readers of
 * ours (a CCID interface of class 0x0B, or any class for a VID:PID of the allow-list), opening
 * and claiming one, its stable reader id and name, and its end when the last user lets go.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "invariant.h"
#include "log.h"
#include "sscard/error.h"
#include "usb_dev.h"
#include "usb_io.h"

/* Parses "VID:PID,VID:PID" (hex) into drv->allow. Returns 0 or SSC_ECONFIG. */
int usb_dev_parse_allow(struct ssc_driver *drv, const char *s)
{
	const char *p = s;

	while (p && *p) {
		unsigned long vid, pid;
		char *end;

		while (*p == ' ' || *p == ',')
			p++;
		if (!*p)
			break;
		if (drv->n_allow == USB_ALLOW_MAX)
			goto bad;
		errno = 0;
		vid = strtoul(p, &end, 16);
		if (end == p || *end != ':' || vid > 0xFFFF || errno)
			goto bad;
		p = end + 1;
		pid = strtoul(p, &end, 16);
		if (end == p || pid > 0xFFFF || errno || (*end && *end != ',' && *end != ' '))
			goto bad;
		drv->allow[drv->n_allow].vid = (uint16_t)vid;
		drv->allow[drv->n_allow].pid = (uint16_t)pid;
		drv->n_allow++;
		p = end;
	}
	return 0;
bad:
	log_error("usb-ccid: [drivers] usb_allow: expected \"VID:PID,VID:PID\" in hex (at most %d), "
		  "got \"%s\"", USB_ALLOW_MAX, s);
	return SSC_ECONFIG;
}

static int usb_allowed(const struct ssc_driver *drv, uint16_t vid, uint16_t pid)
{
	for (size_t i = 0; i < drv->n_allow; i++)
		if (drv->allow[i].vid == vid && drv->allow[i].pid == pid)
			return 1;
	return 0;
}

/*
 * Frees d, its handle and its buffers (the last reference is gone). A device whose interrupt
 * transfer would not end is left whole instead: libusb may still complete that transfer into
 * d->intr_buf and call back with d. It stays counted alive, so that close() does not exit libusb
 * under it either.
 */
static void usb_dev_free(struct usb_dev *d)
{
	struct ssc_driver *drv = d->drv;
	int leaked;

	pthread_mutex_lock(&drv->lock);
	INVARIANT(d->refs == 0);
	/* Closed only once its interrupt transfer ended: libusb must not write to a freed one. */
	if (NEVER(d->intr_active && !d->leaked))
		d->leaked = 1;
	leaked = d->leaked;
	pthread_mutex_unlock(&drv->lock);
	if (leaked)
		return;
	if (d->intr)
		usbl->free_transfer(d->intr);
	if (d->h) {
		(void)usbl->release_interface(d->h, d->iface);
		usbl->close(d->h);
	}
	if (d->dev)
		usbl->unref_device(d->dev);
	pthread_mutex_destroy(&d->io);
	free(d->tx);
	free(d->rx);
	free(d);
	pthread_mutex_lock(&drv->lock);
	drv->n_alive--;
	INVARIANT(drv->n_alive >= 0);
	pthread_mutex_unlock(&drv->lock);
}

void usb_dev_unref(struct usb_dev *d)
{
	int last;

	pthread_mutex_lock(&d->drv->lock);
	if (NEVER(d->refs <= 0)) {
		pthread_mutex_unlock(&d->drv->lock);
		return;   /* release: a leak rather than a second free */
	}
	last = --d->refs == 0;
	pthread_mutex_unlock(&d->drv->lock);
	if (last)
		usb_dev_free(d);
}

/* Copies a USB string descriptor (UTF-16LE) as printable ASCII. Returns 0 or < 0. */
static int usb_string(libusb_device_handle *h, uint8_t idx, uint16_t langid, char *out, size_t cap)
{
	unsigned char buf[256];
	size_t n = 0;
	int r;

	out[0] = '\0';
	if (idx == 0 || cap == 0)
		return SSC_ENOTFOUND;
	r = usbl->control_transfer(h, LIBUSB_ENDPOINT_IN, LIBUSB_REQUEST_GET_DESCRIPTOR,
				    (uint16_t)(LIBUSB_DT_STRING << 8 | idx), langid, buf, sizeof(buf),
				    USB_CTRL_TIMEOUT_MS);
	if (r < 2 || buf[1] != LIBUSB_DT_STRING || buf[0] > r)
		return SSC_EREADER;
	for (int i = 2; i + 1 < buf[0] && n + 1 < cap; i += 2) {
		unsigned c = buf[i] | buf[i + 1] << 8;

		out[n++] = (c >= 0x20 && c < 0x7F) ? (char)c : '?';
	}
	while (n > 0 && out[n - 1] == ' ')
		n--;
	out[n] = '\0';
	return 0;
}

/*
 * Finds a CCID interface in the active configuration: class 0x0B, or any class for an allowed
 * VID:PID, with a CCID class descriptor (in the interface's extra bytes, or after the last
 * endpoint as some early readers put it), bulk IN and OUT endpoints and an optional interrupt IN.
 * Returns 0 with the fields of d set, or SSC_ENOTFOUND.
 */
static int usb_find_interface(struct usb_dev *d, int allowed, int *alt)
{
	struct libusb_config_descriptor *cfg = NULL;
	int rc = SSC_ENOTFOUND;

	if (usbl->get_active_config_descriptor(d->dev, &cfg) != 0 &&
	    usbl->get_config_descriptor(d->dev, 0, &cfg) != 0)
		return SSC_ENOTFOUND;
	for (int i = 0; i < cfg->bNumInterfaces && rc != 0; i++) {
		const struct libusb_interface *itf = &cfg->interface[i];

		for (int a = 0; a < itf->num_altsetting && rc != 0; a++) {
			const struct libusb_interface_descriptor *id = &itf->altsetting[a];
			const unsigned char *extra = id->extra;
			int extra_len = id->extra_length, off;
			uint8_t out = 0, in = 0, intr = 0;

			if (id->bInterfaceClass != LIBUSB_CLASS_SMART_CARD && !allowed)
				continue;
			off = ccid_find_class_desc(extra, extra_len > 0 ? (size_t)extra_len : 0);
			if (off < 0 && id->bNumEndpoints > 0) {
				const struct libusb_endpoint_descriptor *ep =
					&id->endpoint[id->bNumEndpoints - 1];

				extra = ep->extra;
				extra_len = ep->extra_length;
				off = ccid_find_class_desc(extra, extra_len > 0 ? (size_t)extra_len : 0);
			}
			if (off < 0 ||
			    ccid_parse_class_desc(extra + off, (size_t)extra_len - (size_t)off, &d->desc))
				continue;
			for (int e = 0; e < id->bNumEndpoints; e++) {
				const struct libusb_endpoint_descriptor *ep = &id->endpoint[e];
				uint8_t type = ep->bmAttributes & LIBUSB_TRANSFER_TYPE_MASK;

				if (type == LIBUSB_TRANSFER_TYPE_BULK &&
				    (ep->bEndpointAddress & LIBUSB_ENDPOINT_IN) && !in)
					in = ep->bEndpointAddress;
				else if (type == LIBUSB_TRANSFER_TYPE_BULK &&
					 !(ep->bEndpointAddress & LIBUSB_ENDPOINT_IN) && !out)
					out = ep->bEndpointAddress;
				else if (type == LIBUSB_TRANSFER_TYPE_INTERRUPT &&
					 (ep->bEndpointAddress & LIBUSB_ENDPOINT_IN) && !intr)
					intr = ep->bEndpointAddress;
			}
			if (!in || !out)
				continue;
			d->iface = id->bInterfaceNumber;
			*alt = id->bAlternateSetting;
			d->ep_in = in;
			d->ep_out = out;
			d->ep_intr = intr;
			rc = 0;
		}
	}
	usbl->free_config_descriptor(cfg);
	return rc;
}

/* Sets the stable ids and names of d: "usb-ccid-<bus>-<port path>[-i<iface>]". */
static void usb_dev_names(struct usb_dev *d, const struct libusb_device_descriptor *dd,
			  const char *mfr, const char *prod)
{
	uint8_t ports[USB_PORTS_MAX];
	char path[3 * USB_PORTS_MAX + 8];
	int np = usbl->get_port_numbers(d->dev, ports, USB_PORTS_MAX);
	size_t o = 0;

	if (np > 0) {
		for (int i = 0; i < np && o + 5 < sizeof(path); i++)
			o += (size_t)snprintf(path + o, sizeof(path) - o, "%s%u", i ? "." : "",
					      ports[i]);
	} else {
		/* No port path (a root hub?): the address, which a replug changes. */
		snprintf(path, sizeof(path), "d%u", usbl->get_device_address(d->dev));
	}
	if (d->iface)
		snprintf(d->base_id, sizeof(d->base_id), "usb-ccid-%u-%s-i%d", d->bus, path, d->iface);
	else
		snprintf(d->base_id, sizeof(d->base_id), "usb-ccid-%u-%s", d->bus, path);
	if (mfr[0] && prod[0] && strncmp(prod, mfr, strlen(mfr)) != 0)
		snprintf(d->name, sizeof(d->name), "%.30s %.48s [%u-%.24s]", mfr, prod, d->bus, path);
	else if (prod[0])
		snprintf(d->name, sizeof(d->name), "%.80s [%u-%.24s]", prod, d->bus, path);
	else
		snprintf(d->name, sizeof(d->name), "USB CCID reader %04x:%04x [%u-%.24s]",
			 dd->idVendor, dd->idProduct, d->bus, path);
}


/* A new device for dev, with one reference (the set's), counted alive. NULL when out of memory. */
static struct usb_dev *usb_dev_new(struct ssc_driver *drv, libusb_device *dev)
{
	struct usb_dev *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->drv = drv;
	d->dev = usbl->ref_device(dev);
	d->bus = usbl->get_bus_number(dev);
	d->refs = 1;
	if (pthread_mutex_init(&d->io, NULL) != 0) {
		usbl->unref_device(d->dev);
		free(d);
		return NULL;
	}
	pthread_mutex_lock(&drv->lock);
	drv->n_alive++;
	pthread_mutex_unlock(&drv->lock);
	return d;
}

/*
 * Whether the reader whose class descriptor d holds is one we drive (not character level; at
 * TPDU level, T=0 or T=1), with a dwMaxCCIDMessageLength made usable. Returns 0 or SSC_ENOTFOUND.
 */
static int usb_dev_check(struct usb_dev *d, const struct libusb_device_descriptor *dd)
{
	d->level = ccid_exchange_level(d->desc.features);
	d->n_slots = (unsigned)d->desc.max_slot_index + 1;
	if (d->level == CCID_LEVEL_CHAR) {
		log_warn("usb-ccid: reader %04x:%04x exchanges characters only (dwFeatures %08X); "
			 "not supported", dd->idVendor, dd->idProduct, d->desc.features);
		return SSC_ENOTFOUND;
	}
	if (!(d->desc.protocols & (CCID_PROTO_T0 | CCID_PROTO_T1)) && d->level == CCID_LEVEL_TPDU)
		return SSC_ENOTFOUND;
	if (d->desc.max_msg_len < USB_MSG_TINY) {
		/* Nonsense (some readers say 0 here): assume the CCID minimum for short APDUs. */
		d->desc.max_msg_len = USB_MSG_MIN;
	}
	/*
	 * A value below the minimum but usable is kept: extended-APDU readers then get chained
	 * commands and answers, T=1 blocks get a smaller INF, and what cannot fit is refused.
	 */
	if (d->desc.max_msg_len > USB_MSG_MAX)
		d->desc.max_msg_len = USB_MSG_MAX;
	return 0;
}

/*
 * Opens the device and claims its CCID interface (alternate setting alt). quiet logs a failure
 * at debug level only. Returns 0 or the mapped libusb error.
 */
static int usb_dev_claim(struct usb_dev *d, const struct libusb_device_descriptor *dd, int alt,
			 int quiet)
{
	int r = usbl->open(d->dev, &d->h);

	if (r != 0) {
		log_msg(quiet ? LOG_LVL_DEBUG : LOG_LVL_WARN,
			"usb-ccid: cannot open reader %04x:%04x on bus %u: %s", dd->idVendor,
			 dd->idProduct, d->bus, usbl->error_name(r));
		return usb_io_map(r);
	}
	(void)usbl->set_auto_detach_kernel_driver(d->h, 1);
	r = usbl->claim_interface(d->h, d->iface);
	if (r != 0) {
		log_msg(quiet ? LOG_LVL_DEBUG : LOG_LVL_WARN,
			"usb-ccid: cannot claim reader %04x:%04x on bus %u: %s%s", dd->idVendor,
			 dd->idProduct, d->bus, usbl->error_name(r),
			 r == LIBUSB_ERROR_BUSY ? " (another program, pcscd?, holds it)" : "");
		return usb_io_map(r);
	}
	if (alt != 0 && (r = usbl->set_interface_alt_setting(d->h, d->iface, alt)) != 0)
		return usb_io_map(r);
	return 0;
}

/* Reads the reader's strings (the language list first, each with a short timeout); names it. */
static void usb_dev_describe(struct usb_dev *d, const struct libusb_device_descriptor *dd)
{
	char mfr[64] = "", prod[64] = "";
	unsigned char lb[8];
	int r = usbl->control_transfer(d->h, LIBUSB_ENDPOINT_IN, LIBUSB_REQUEST_GET_DESCRIPTOR,
					LIBUSB_DT_STRING << 8, 0, lb, sizeof(lb), USB_CTRL_TIMEOUT_MS);

	if (r >= 4 && lb[1] == LIBUSB_DT_STRING) {
		uint16_t langid = (uint16_t)(lb[2] | lb[3] << 8);

		(void)usb_string(d->h, dd->iManufacturer, langid, mfr, sizeof(mfr));
		(void)usb_string(d->h, dd->iProduct, langid, prod, sizeof(prod));
		(void)usb_string(d->h, dd->iSerialNumber, langid, d->serial, sizeof(d->serial));
	}
	usb_dev_names(d, dd, mfr, prod);
}

/* wMaxPacketSize of the bulk-IN endpoint of d's interface; 64 when unknown. */
static size_t usb_dev_in_packet(struct usb_dev *d)
{
	const struct libusb_endpoint_descriptor *ep = NULL;
	struct libusb_config_descriptor *cfg = NULL;
	size_t pkt = 64;

	if (usbl->get_active_config_descriptor(d->dev, &cfg) != 0)
		return pkt;
	for (int i = 0; i < cfg->bNumInterfaces && !ep; i++)
		for (int a = 0; a < cfg->interface[i].num_altsetting && !ep; a++) {
			const struct libusb_interface_descriptor *id = &cfg->interface[i].altsetting[a];

			if (id->bInterfaceNumber != d->iface)
				continue;
			for (int e = 0; e < id->bNumEndpoints; e++)
				if (id->endpoint[e].bEndpointAddress == d->ep_in)
					ep = &id->endpoint[e];
		}
	if (ep && ep->wMaxPacketSize > 0)
		pkt = ep->wMaxPacketSize & 0x7FF;
	usbl->free_config_descriptor(cfg);
	return pkt;
}

/* d's transfer buffers: one message each way. Returns 0 or SSC_ENOMEM. */
static int usb_dev_buffers(struct usb_dev *d)
{
	size_t msg = d->desc.max_msg_len, pkt = usb_dev_in_packet(d);

	/* A multiple of the packet size, so that a whole message never overflows. */
	d->rx_cap = (msg + pkt - 1) / pkt * pkt;
	d->tx_cap = msg;
	d->tx = malloc(d->tx_cap);
	d->rx = malloc(d->rx_cap);
	return d->tx && d->rx ? 0 : SSC_ENOMEM;
}

/* Where the cards are now: GetSlotStatus of every slot. Returns 0 or its error (logged). */
static int usb_dev_first_status(struct usb_dev *d)
{
	for (unsigned s = 0; s < d->n_slots; s++) {
		int rc = usb_io_slot_status(d, s, usb_now_ms() + USB_STATUS_TIMEOUT_MS, 0, NULL);

		if (rc != 0) {
			log_warn("usb-ccid: %s: no answer to GetSlotStatus for slot %u: %s", d->base_id,
				 s, ssc_strerror(rc));
			return rc;
		}
	}
	pthread_mutex_lock(&d->drv->lock);
	for (unsigned s = 0; s < d->n_slots; s++)
		d->slot[s].report_out = 0;   /* expect_notify stays: a first notification is old news */
	pthread_mutex_unlock(&d->drv->lock);
	return 0;
}

int usb_dev_open(struct ssc_driver *drv, libusb_device *dev, int quiet, struct usb_dev **out)
{
	struct libusb_device_descriptor dd;
	struct usb_dev *d;
	int alt = 0, rc;

	if (usbl->get_device_descriptor(dev, &dd) != 0 || dd.bDeviceClass == LIBUSB_CLASS_HUB)
		return SSC_ENOTFOUND;
	d = usb_dev_new(drv, dev);
	if (!d)
		return SSC_ENOMEM;
	rc = usb_find_interface(d, usb_allowed(drv, dd.idVendor, dd.idProduct), &alt);
	if (rc == 0)
		rc = usb_dev_check(d, &dd);
	if (rc == 0)
		rc = usb_dev_claim(d, &dd, alt, quiet);
	if (rc != 0)
		goto out_free;
	usb_dev_describe(d, &dd);
	rc = usb_dev_buffers(d);
	if (rc == 0)
		rc = usb_dev_first_status(d);
	if (rc != 0)
		goto out_free;
	usb_io_intr_start(d);
	log_info("usb-ccid: %s: %s, %u slot%s, %s level, dwFeatures %08X%s%s", d->base_id, d->name,
		 d->n_slots, d->n_slots > 1 ? "s" : "",
		 d->level == CCID_LEVEL_TPDU ? "TPDU"
		 : d->level == CCID_LEVEL_SHORT_APDU ? "short APDU" : "extended APDU",
		 d->desc.features, d->serial[0] ? ", serial " : "", d->serial);
	*out = d;
	return 0;

out_free:
	d->refs = 0;
	usb_dev_free(d);
	return rc;
}
